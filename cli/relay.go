package cli

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/coder/websocket"

	"github.com/nanodems/connector/internal/pin"
	"github.com/nanodems/connector/internal/relaydial"
	"github.com/nanodems/connector/internal/wsconn"
)

// Relay says how to reach a relay's API.
type Relay struct {
	URL string // https://host:port (http only for loopback relays)
	// URLs are further relays of the same installation. A CLI session and
	// a tunnel race them with URL, every address of every one (Happy
	// Eyeballs), and reconnect to whichever answers (relays.go).
	URLs []string
	// Dialer races the relays' addresses; nil takes the defaults (tests
	// set the stagger or a resolver of their own).
	Dialer *relaydial.Dialer
	Token  string // nt_… API token, sent as Authorization: Bearer
	// Pin is the "sha256:<hex>" public-key pin of a relay whose API
	// certificate is self-signed; empty trusts the system roots.
	Pin string
}

// sessionCache lets every tunnel after the first resume the relay's TLS
// session instead of a full handshake: a WebSocket tunnel is one TLS
// connection, so opens per second hinge on it (docs/perf.md, opens).
var sessionCache = tls.NewLRUClientSessionCache(64)

// TLSConfig trusts the pinned key, or the system roots without a pin.
func (r Relay) TLSConfig() *tls.Config {
	c := pin.TLSConfig(r.Pin)
	c.ClientSessionCache = sessionCache
	return c
}

// HTTPClient is an http.Client for this relay.
func (r Relay) HTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: r.TLSConfig(), ForceAttemptHTTP2: false}}
}

// wsHTTPClient is an http.Client for WebSocket upgrades only: its
// connections pass each frame to TLS in one Write (wsconn.CoalesceFrames),
// which cut a 64 KiB message from 17 TLS records to 4. Each connection
// races every relay of r (relays.go). Plain API requests use HTTPClient.
func (r Relay) wsHTTPClient(onWin func(netip.AddrPort)) *http.Client {
	plain, secure := r.raceDial(false, onWin), r.raceDial(true, onWin)
	tr := &http.Transport{
		ForceAttemptHTTP2: false,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := plain(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return wsconn.CoalesceFrames(c), nil
		},
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := secure(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return wsconn.CoalesceFrames(c), nil
		},
	}
	return &http.Client{Transport: tr}
}

// RelayError is a relay's refusal, with its HTTP status and one-line reason.
type RelayError struct {
	Status int
	Reason string
}

func (e *RelayError) Error() string {
	return fmt.Sprintf("relay refused (%d %s): %s", e.Status, http.StatusText(e.Status), e.Reason)
}

// DialTunnel opens a raw tunnel to the device port behind handle. The conn
// supports CloseWrite: the device sees EOF while its answer still flows.
func DialTunnel(ctx context.Context, r Relay, handle string) (net.Conn, error) {
	return DialTunnelHeader(ctx, r, handle, nil)
}

// DialTunnelHeader is DialTunnel with extra request headers (X-License,
// X-Admin-Api-Key for platform triage, …).
func DialTunnelHeader(ctx context.Context, r Relay, handle string, extra http.Header) (net.Conn, error) {
	return dialTunnel(ctx, r, handle, extra, "")
}

// DialDedicated opens a tunnel that the agent carries on a connection of
// its own from the start (?dedicated=1): for bulk transfers, which would
// otherwise add latency to the site's other tunnels.
func DialDedicated(ctx context.Context, r Relay, handle string) (net.Conn, error) {
	return dialTunnel(ctx, r, handle, nil, "dedicated=1")
}

func dialTunnel(ctx context.Context, r Relay, handle string, extra http.Header, query string) (net.Conn, error) {
	client := r.wsHTTPClient(nil)
	// A refusal leaves its connection idle in the pool; the upgraded one
	// is hijacked and unaffected.
	defer client.CloseIdleConnections()
	return dialWebSocket(ctx, client, r, "/api/tunnel/"+url.PathEscape(handle), query, extra, "tunnel to "+handle)
}

// dialWebSocket opens a WebSocket to path?query on the relay with the
// token as Bearer (plus extra headers), as a wsconn byte stream. A
// refusal is a *RelayError; other failures are wrapped with what.
func dialWebSocket(ctx context.Context, client *http.Client, r Relay, path, query string, extra http.Header, what string) (net.Conn, error) {
	u, err := url.Parse(strings.TrimRight(r.URL, "/") + path)
	if err != nil {
		return nil, fmt.Errorf("relay URL: %w", err)
	}
	u.RawQuery = query
	switch u.Scheme {
	case "https":
		u.Scheme = "wss"
	case "http":
		u.Scheme = "ws"
	default:
		return nil, fmt.Errorf("relay URL %q is not http(s)", r.URL)
	}
	hdr := extra.Clone()
	if hdr == nil {
		hdr = http.Header{}
	}
	if r.Token != "" {
		hdr.Set("Authorization", "Bearer "+r.Token)
	}
	ws, resp, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{
		HTTPClient:      client,
		HTTPHeader:      hdr,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, relayError(resp)
		}
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	ws.SetReadLimit(1 << 20)
	return wsconn.New(ws, wsconn.Addr("local"), wsconn.Addr(u.Host)), nil
}

func relayError(resp *http.Response) error {
	var body struct {
		Error string `json:"error"`
	}
	if resp.Body != nil {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &body) != nil || body.Error == "" {
			body.Error = strings.TrimSpace(string(b))
		}
	}
	if body.Error == "" {
		body.Error = http.StatusText(resp.StatusCode)
	}
	return &RelayError{Status: resp.StatusCode, Reason: body.Error}
}
