package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/nanodems/connector/internal/coalesce"
	"github.com/nanodems/connector/internal/relaydial"
)

// targets are the host:port of URL and of every further URL, which must
// all use URL's scheme.
func (r Relay) targets() ([]string, error) {
	base, err := url.Parse(r.URL)
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" {
		return nil, fmt.Errorf("relay URL %q is not http(s)://host[:port]", r.URL)
	}
	var out []string
	for _, raw := range append([]string{r.URL}, r.URLs...) {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("relay URL %q is not http(s)://host[:port]", raw)
		}
		if u.Scheme != base.Scheme {
			return nil, fmt.Errorf("relay URLs %q and %q mix http and https; the relays of one installation serve the same", r.URL, raw)
		}
		port := u.Port()
		if port == "" {
			port = "443"
			if u.Scheme == "http" {
				port = "80"
			}
		}
		out = append(out, net.JoinHostPort(u.Hostname(), port))
	}
	return out, nil
}

// raceDial returns a dial function for http.Transport that ignores the
// address it is given and races every address of every relay of r
// (Happy Eyeballs, internal/relaydial): with TLS (the pinned key, or the
// system roots with the name of the relay reached) when secure, plain
// TCP otherwise. Requests keep URL's host in their Host header: the
// relays of one installation answer the same. onWin, if set, learns the
// address that won each race. protos, if set, are the ALPN protocols the
// TLS handshake offers (the raw transport, raw.go).
func (r Relay) raceDial(secure bool, onWin func(netip.AddrPort), protos ...string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	targets, terr := r.targets()
	d := r.Dialer
	if d == nil {
		d = &relaydial.Dialer{}
	}
	var hs relaydial.Handshake
	if secure {
		hs = func(ctx context.Context, raw net.Conn, target string) (net.Conn, error) {
			cfg := r.TLSConfig()
			cfg.ServerName, _, _ = net.SplitHostPort(target)
			cfg.NextProtos = protos
			c := coalesce.Client(raw, cfg)
			if err := c.HandshakeContext(ctx); err != nil {
				return nil, fmt.Errorf("TLS handshake: %w", err)
			}
			return c, nil
		}
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if terr != nil {
			return nil, terr
		}
		c, err := d.Dial(ctx, targets, hs)
		if err != nil {
			return nil, err
		}
		if onWin != nil {
			onWin(c.Addr)
		}
		return c.Conn, nil
	}
}

// raceHTTPClient is HTTPClient with every relay of r raced: the plan
// fetches of a CLI session, which must reach whichever relay is up.
func (r Relay) raceHTTPClient() *http.Client {
	tr := &http.Transport{ForceAttemptHTTP2: false, Proxy: nil}
	tr.DialContext = r.raceDial(false, nil)
	tr.DialTLSContext = r.raceDial(true, nil)
	return &http.Client{Transport: tr}
}

// list names every relay of r, for the log.
func (r Relay) list() string {
	return strings.Join(append([]string{r.URL}, r.URLs...), ",")
}

// errNoRelay is a Relay without URL.
var errNoRelay = errors.New("no relay URL (--relay or NANODEMS_RELAY)")
