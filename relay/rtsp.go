package relay

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nanodems/connector/mux"
	"github.com/nanodems/connector/relay/store"
	"github.com/nanodems/connector/rtsp"
)

// The RTSP gateway (docs/rtsp.md): rtsp://relay:9554/{handle}/…
// reaches the camera port behind a handle. Package rtsp speaks the
// protocol; this file gives it the relay: grants, tenants, tunnels and
// stored camera logins.
//
// A player cannot sign in or send a bearer token: all an operator can give
// VLC or a VMS is a URL. So the API mints one that carries a grant, a
// signed and expiring statement "tenant T may open handle H", in its query
// (nd_grant=…). The gateway checks and strips it before the camera sees
// the request.

// rtspGateway serves the RTSP gateway's listener (Config.RTSPAddr) and
// POST /api/handles/{handle}/rtsp-url, which mints its URLs. It depends on
// the relay's grant key (grants are signed with a key derived from it),
// the resolver (a grant's handle and tenant), the Dialer every camera
// session goes through, and the sealer (the camera's stored login).
type rtspGateway struct {
	base
	grantKey []byte
	dialer   Dialer
	routes   resolver
	sealer   *sealer
	apiTLS   *tls.Config     // the API's certificate, for RTSPS; nil with plain HTTP
	rtsp     *rtsp.Gateway   // nil until start, and when off
	drain    <-chan struct{} // closed when the relay starts draining
}

// Bounds of a grant's lifetime: a VMS keeps a camera URL for months, but
// a URL that never expires is a password that cannot be changed; 30 days
// makes rotation a routine. Revoking the handle ends every grant for it
// at once.
const (
	rtspGrantDefaultTTL = 24 * time.Hour
	rtspGrantMaxTTL     = 30 * 24 * time.Hour
	rtspGrantMinTTL     = time.Second
)

// rtspGrant is the signed content of nd_grant.
type rtspGrant struct {
	Kind   string `json:"k"` // "rtsp": no other grant of this key passes as one
	Handle string `json:"h"`
	Tenant string `json:"t"`
	User   string `json:"u,omitempty"` // who minted it; disabling them ends the grant
	// Cred is the revocable credential it was minted with (an API
	// token's or CLI session's id, a browser session's key): revoking
	// it ends the grant and the sessions playing on it.
	Cred string `json:"c,omitempty"`
	Exp  int64  `json:"e"`
}

// rtspGrantKey derives the key of RTSP grants from the relay's grant key,
// so a subdomain sign-in grant (web.go) can never be replayed as one.
func (s *rtspGateway) rtspGrantKey() []byte {
	m := hmac.New(sha256.New, s.grantKey)
	m.Write([]byte("nanodems rtsp grant v1"))
	return m.Sum(nil)
}

func (s *rtspGateway) signRTSPGrant(g rtspGrant) string {
	g.Kind = "rtsp"
	b, _ := json.Marshal(g)
	body := base64.RawURLEncoding.EncodeToString(b)
	mac := hmac.New(sha256.New, s.rtspGrantKey())
	mac.Write([]byte(body))
	return body + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

var (
	errGrantMalformed = errors.New("malformed grant")
	errGrantForged    = errors.New("grant signature does not verify")
	errGrantExpired   = errors.New("grant expired; mint a new URL")
)

func (s *rtspGateway) verifyRTSPGrant(v string) (rtspGrant, error) {
	var g rtspGrant
	body, sig, ok := strings.Cut(v, ".")
	if !ok || len(v) > 2048 {
		return g, errGrantMalformed
	}
	mac := hmac.New(sha256.New, s.rtspGrantKey())
	mac.Write([]byte(body))
	want := base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return g, errGrantForged
	}
	b, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || json.Unmarshal(b, &g) != nil || g.Kind != "rtsp" {
		return g, errGrantMalformed
	}
	if !s.cfg.Now().Before(time.Unix(g.Exp, 0)) {
		return g, errGrantExpired
	}
	return g, nil
}

// mintRTSPURL serves POST /api/handles/{handle}/rtsp-url
// {"path": "/Streaming/Channels/101", "ttl_seconds": 86400}: the URL an
// operator pastes into VLC or a VMS.
func (s *rtspGateway) mintRTSPURL(w http.ResponseWriter, r *http.Request, p Principal) error {
	if s.rtsp == nil {
		return fmt.Errorf("%w: the RTSP gateway is off on this relay", errBadRequest)
	}
	h := r.PathValue("handle")
	var in struct {
		Path       string `json:"path"`
		TTLSeconds int64  `json:"ttl_seconds"`
	}
	// The body is optional: no body mints a URL of the handle's root
	// for a day.
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		return fmt.Errorf("%w: request body: %v", errBadRequest, err)
	}
	if len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			return fmt.Errorf("%w: request body: %v", errBadRequest, err)
		}
	}
	route, err := s.routes.resolve(r.Context(), h)
	if err != nil {
		return err
	}
	if !p.canAccess(route.TenantID) {
		return ErrOtherTenant
	}
	path, err := rtspPath(in.Path)
	if err != nil {
		return err
	}
	ttl := rtspGrantDefaultTTL
	if in.TTLSeconds != 0 {
		ttl = time.Duration(in.TTLSeconds) * time.Second
		if in.TTLSeconds < 0 || ttl < rtspGrantMinTTL || ttl > rtspGrantMaxTTL {
			return fmt.Errorf("%w: ttl_seconds must be between 1 and %d", errBadRequest, int64(rtspGrantMaxTTL/time.Second))
		}
	}
	exp := s.cfg.Now().Add(ttl).Truncate(time.Second)
	grant := s.signRTSPGrant(rtspGrant{Handle: h, Tenant: route.TenantID, User: p.UserID, Cred: p.Cred, Exp: exp.Unix()})
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	rest := "/" + h + path + sep + rtsp.GrantParam + "=" + grant
	s.audit(store.AuditEvent{TenantID: route.TenantID, Actor: p.Actor, Action: "rtsp.url_minted", Target: h,
		Detail: "path " + path + ", expires " + exp.UTC().Format(time.RFC3339)})
	out := map[string]string{"url": "rtsp://" + s.rtspHost(r, s.rtsp.Addr()) + rest, "expires_at": exp.UTC().Format(time.RFC3339)}
	if a := s.rtsp.TLSAddr(); a != "" {
		// The same grant over TLS: the URL is then never in clear text.
		out["rtsps_url"] = "rtsps://" + s.rtspHost(r, a) + rest
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// rtspPath checks the camera path of a minted URL: absolute, printable,
// no fragment, no grant of its own.
func rtspPath(p string) (string, error) {
	if p == "" {
		return "/", nil
	}
	bad := !strings.HasPrefix(p, "/") || len(p) > 1024 || strings.ContainsAny(p, "# \t") || strings.Contains(p, rtsp.GrantParam+"=")
	for i := 0; i < len(p) && !bad; i++ {
		bad = p[i] < 0x21 || p[i] == 0x7f
	}
	if bad {
		return "", fmt.Errorf("%w: path must be the camera's absolute path and query, e.g. /Streaming/Channels/101", errBadRequest)
	}
	return p, nil
}

// rtspHost is the host:port of the gateway in minted URLs: the relay's
// public name (PublicURL, else the name the API was reached by) and the
// port of the gateway's listener at addr.
func (s *rtspGateway) rtspHost(r *http.Request, addr string) string {
	host := r.Host
	if s.cfg.PublicURL != "" {
		if u, err := url.Parse(s.cfg.PublicURL); err == nil && u.Host != "" {
			host = u.Host
		}
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	_, port, _ := net.SplitHostPort(addr)
	return net.JoinHostPort(strings.Trim(host, "[]"), port)
}

// RTSPAddr is the gateway's listening address ("" when it is off).
func (s *Server) RTSPAddr() string {
	if s.rtspGW.rtsp == nil {
		return ""
	}
	return s.rtspGW.rtsp.Addr()
}

// RTSPSAddr is the gateway's RTSPS listening address ("" without one).
func (s *Server) RTSPSAddr() string {
	if s.rtspGW.rtsp == nil {
		return ""
	}
	return s.rtspGW.rtsp.TLSAddr()
}

// RTSPStats are the gateway's live counters (sessions, viewers, slow
// viewers skipped or dropped); nil when the gateway is off.
func (s *Server) RTSPStats() *rtsp.Stats {
	if s.rtspGW.rtsp == nil {
		return nil
	}
	return s.rtspGW.rtsp.Stats()
}

// start starts the gateway unless Config.RTSPAddr is "off".
func (s *rtspGateway) start() error {
	if s.cfg.RTSPAddr == "off" {
		return nil
	}
	cfg := rtsp.Config{Addr: s.cfg.RTSPAddr, Backend: rtspBackend{s}, Logger: s.log, CameraTimeout: s.cfg.CameraTimeout, ResumeFor: s.cfg.RTSPResumeFor}
	if a := s.cfg.RTSPSAddr; a != "" && a != "off" && s.apiTLS != nil {
		cfg.TLSAddr = a
		cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: s.apiTLS.Certificates}
	}
	// Diagnostic switches (docs/rtsp.md, perf/rtspbench), not settings:
	// the goroutine-per-connection listener and no fan-out, for comparison.
	if os.Getenv("NANODEMS_RTSP_LISTENER") == string(rtsp.Goroutines) {
		cfg.Mode = rtsp.Goroutines
	}
	if os.Getenv("NANODEMS_RTSP_FANOUT") == "off" {
		cfg.NoFanOut = true
	}
	g, err := rtsp.New(cfg)
	if err != nil {
		return err
	}
	if err := g.Start(); err != nil {
		if errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("relay: RTSP listener: %w (ports below 1024, such as RTSPS's 322, need CAP_NET_BIND_SERVICE; or choose another with --rtsps-addr, or \"off\")", err)
		}
		return fmt.Errorf("relay: RTSP listener: %w", err)
	}
	s.rtsp = g
	return nil
}

// stop closes the gateway; its camera sessions are torn down while
// the agents are still connected.
func (s *rtspGateway) stop() {
	if s.rtsp != nil {
		s.rtsp.Close()
	}
}

// rtspBackend is the relay as package rtsp sees it.
type rtspBackend struct{ s *rtspGateway }

func (b rtspBackend) Authorize(ctx context.Context, h, grant string) (rtsp.Principal, error) {
	select {
	case <-b.s.drain:
		// The gateway's listener stays open until Close; new sessions
		// are turned away so that players go to another relay.
		return rtsp.Principal{}, rtsp.Errorf(503, "relay draining; connect to another relay")
	default:
	}
	g, err := b.s.verifyRTSPGrant(grant)
	if err != nil {
		return rtsp.Principal{}, rtsp.Errorf(401, "%v", err)
	}
	route, err := b.s.routes.resolve(ctx, h)
	if err != nil {
		return rtsp.Principal{}, rtspError(err)
	}
	// The tenant first: another tenant's handle is a 403, whatever the
	// grant was minted for.
	if route.TenantID != g.Tenant {
		return rtsp.Principal{}, rtspError(ErrOtherTenant)
	}
	if g.Handle != h {
		return rtsp.Principal{}, rtsp.Errorf(401, "grant is for another handle")
	}
	if err := b.s.grantRevoked(ctx, g); err != nil {
		return rtsp.Principal{}, rtsp.Errorf(401, "%v", err)
	}
	subject := "user:" + g.User
	if g.User == "" {
		subject = "admin" // minted with the admin key
	}
	return rtsp.Principal{Tenant: g.Tenant, Subject: subject, Expires: time.Unix(g.Exp, 0), Cred: g.Cred, User: g.User}, nil
}

// Hold registers a playing connection under the credential and user that
// minted its grant (credConns), so that revoking either closes it.
func (b rtspBackend) Hold(p rtsp.Principal, end func()) (release func()) {
	return credConns.addUse(Principal{TenantID: p.Tenant, UserID: p.User, Cred: p.Cred}, func(error) { end() })
}

func (b rtspBackend) Dial(ctx context.Context, p rtsp.Principal, h string) (net.Conn, rtsp.Target, error) {
	route, err := b.s.routes.resolve(ctx, h)
	if err != nil {
		return nil, rtsp.Target{}, rtspError(err)
	}
	c, err := b.s.dialer.Dial(ctx, Principal{TenantID: p.Tenant, Actor: p.Subject}, h, DialOptions{Path: PathRTSP})
	if err != nil {
		return nil, rtsp.Target{}, rtspError(err)
	}
	return c, rtsp.Target{Host: route.Host, Port: route.Port}, nil
}

// DialUDP opens a UDP relay on the camera's LAN (rtsp.UDPBackend): a
// tunnel with mux.FlagUDP to the same handle, so the same tenant check,
// route and allowlist apply as to the camera's RTSP port, and the agent
// relays datagrams only to and from that camera's address.
func (b rtspBackend) DialUDP(ctx context.Context, p rtsp.Principal, h string) (rtsp.UDPRelay, error) {
	c, err := b.s.dialer.Dial(ctx, Principal{TenantID: p.Tenant, Actor: p.Subject}, h, DialOptions{Flags: mux.FlagUDP, Path: PathRTSP})
	if err != nil {
		return nil, rtspError(err)
	}
	sc, ok := c.(openStatuser)
	if !ok {
		c.Close()
		return nil, rtsp.Errorf(502, "UDP relay: tunnel has no status")
	}
	rtp, rtcp, err := mux.ParseUDPPorts(sc.openStatus())
	if err != nil {
		c.Close()
		return nil, rtsp.Errorf(502, "UDP relay: %v", err)
	}
	return &udpTunnel{c: c, br: bufio.NewReaderSize(c, 64<<10), rtp: int(rtp), rtcp: int(rtcp)}, nil
}

// udpTunnel is the relay's end of a FlagUDP tunnel: datagrams framed on
// the stream (mux.ReadDatagram).
type udpTunnel struct {
	c         net.Conn
	br        *bufio.Reader // the reading goroutine's only
	rtp, rtcp int

	wmu  sync.Mutex // RTCP of the client and SetCamera may write at once
	wbuf []byte
}

// udpWriteTimeout bounds a write to the agent: a datagram that cannot go
// out in that long is better lost, as UDP would, than holding the client
// whose RTCP it is.
const udpWriteTimeout = 5 * time.Second

func (u *udpTunnel) Ports() (int, int) { return u.rtp, u.rtcp }

func (u *udpTunnel) SetCamera(rtp, rtcp int) error {
	if rtp < 1 || rtp > 65535 || rtcp < 1 || rtcp > 65535 {
		return fmt.Errorf("UDP relay: bad camera ports %d-%d", rtp, rtcp)
	}
	u.wmu.Lock()
	defer u.wmu.Unlock()
	u.wbuf = mux.AppendUDPPeer(u.wbuf[:0], uint16(rtp), uint16(rtcp))
	return u.writeLocked()
}

func (u *udpTunnel) ReadDatagram(b []byte) (int, bool, error) {
	for {
		ch, n, err := mux.ReadDatagram(u.br, b)
		if err != nil {
			return 0, false, err
		}
		switch ch {
		case mux.UDPChannelRTP:
			return n, false, nil
		case mux.UDPChannelRTCP:
			return n, true, nil
		}
		// Another channel: from a later agent, skipped.
	}
}

func (u *udpTunnel) Pending() bool {
	n := u.br.Buffered()
	if n < mux.DatagramHeaderLen {
		return false
	}
	hdr, _ := u.br.Peek(mux.DatagramHeaderLen)
	return n >= mux.DatagramHeaderLen+int(binary.BigEndian.Uint16(hdr[1:3]))
}

func (u *udpTunnel) WriteDatagram(rtcp bool, b []byte) error {
	ch := mux.UDPChannelRTP
	if rtcp {
		ch = mux.UDPChannelRTCP
	}
	u.wmu.Lock()
	defer u.wmu.Unlock()
	var err error
	if u.wbuf, err = mux.AppendDatagram(u.wbuf[:0], ch, b); err != nil {
		return err
	}
	return u.writeLocked()
}

func (u *udpTunnel) writeLocked() error {
	u.c.SetWriteDeadline(time.Now().Add(udpWriteTimeout))
	if _, err := u.c.Write(u.wbuf); err != nil {
		return fmt.Errorf("UDP relay: %w", err)
	}
	return nil
}

func (u *udpTunnel) Close() error { return u.c.Close() }

func (b rtspBackend) Credentials(ctx context.Context, h string) (string, string, bool) {
	route, err := b.s.routes.resolve(ctx, h)
	if err != nil {
		return "", "", false
	}
	c, err := b.s.sealer.credsFor(ctx, route.DeviceID)
	if err != nil || c == nil {
		return "", "", false
	}
	return c.Username, c.Password, true
}

// rtspError gives a relay error its RTSP status: RTSP reuses HTTP's codes
// for everything the relay refuses (401, 403, 404, 502, 503, 504).
func rtspError(err error) error {
	code := HTTPStatus(err)
	if code == http.StatusInternalServerError {
		return rtsp.Errorf(500, "internal error")
	}
	return rtsp.Errorf(code, "%v", err)
}

// grantRevoked is why grant g no longer opens anything although its
// signature and expiry hold: the credential that minted it was revoked,
// or its user disabled. A grant is checked against the store at every
// authorization: a revocation on another relay is seen at once, without
// waiting for the change feed.
func (s *rtspGateway) grantRevoked(ctx context.Context, g rtspGrant) error {
	if g.Cred != "" {
		if err := credStillValid(ctx, s.store, g.Cred); err != nil {
			return err
		}
	}
	if g.User != "" {
		u, err := s.store.GetUser(ctx, g.User)
		if errors.Is(err, store.ErrNotFound) || (err == nil && u.DisabledAt != nil) {
			return errUserDisabled
		}
		if err != nil {
			return fmt.Errorf("grant's user: %w", err)
		}
	}
	return nil
}
