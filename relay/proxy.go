package relay

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nanodems/connector/internal/httpauth"
	"github.com/nanodems/connector/relay/rewrite"
	"github.com/nanodems/connector/relay/store"
)

// webProxy is the browser proxy: one httputil.ReverseProxy for every
// handle, whose Transport dials through the Dialer. The Transport pools
// keep-alive connections per handle (the URL host is the handle), so a
// browser session reuses its tunnels to the camera. browserProxy (web.go)
// decides who may use it; the sealer gives it the camera logins it
// answers challenges with (proxyauth.go).
type webProxy struct {
	base
	dialer Dialer
	routes resolver
	sealer *sealer
	rp     *httputil.ReverseProxy
	tr     *http.Transport
	auth   *authTransport
	scheme sync.Map // handle → "http" or "https", learnt on first use
}

type proxyCtxKey struct{}

// proxyReq is what the proxy knows of one request, carried in its context
// from the handler to the Rewrite, ModifyResponse and dial hooks.
type proxyReq struct {
	who    Principal // checked by the handler; the dial is made as them
	route  store.Route
	prefix string // "/c/{handle}", or "" in subdomain mode
	path   string // the camera's path
	host   string // Host header the camera expects
	secure bool   // the browser came over TLS
	// stripAuth: the Authorization header was the relay's credential.
	stripAuth bool
}

// newWebProxy makes the proxy. cameraTimeout bounds the wait for a
// camera's response header only: a body (MJPEG, a firmware download) may
// stream for hours.
func newWebProxy(b base, dialer Dialer, routes resolver, sl *sealer, cameraTimeout time.Duration) *webProxy {
	p := &webProxy{base: b, dialer: dialer, routes: routes, sealer: sl}
	p.tr = &http.Transport{
		DialContext:           p.dial,
		DialTLSContext:        p.dialTLS,
		ResponseHeaderTimeout: cameraTimeout,
		ExpectContinueTimeout: 3 * time.Second, // cameras without 100-continue get the body after this
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   16,
		ForceAttemptHTTP2:     false, // cameras speak HTTP/1.1
		DisableCompression:    true,  // pass the camera's encoding through
	}
	p.auth = &authTransport{p: p, clients: map[string]*httpauth.Client{}}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      p.auth,
		FlushInterval:  -1, // MJPEG, SSE, chunked: flush as it arrives
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.errorHandler,
		// What it logs itself is a stream cut mid-body: the browser left,
		// or a revocation ended the request (untilRevoked). Routine, so
		// debug.
		ErrorLog: slog.NewLogLogger(b.log.Handler(), slog.LevelDebug),
	}
	return p
}

func fromCtx(ctx context.Context) *proxyReq {
	pr, _ := ctx.Value(proxyCtxKey{}).(*proxyReq)
	return pr
}

// serve proxies r to the device port of route. The caller has checked the
// principal's right to it.
func (p *webProxy) serve(w http.ResponseWriter, r *http.Request, who Principal, route store.Route, prefix, path string, stripAuth bool) {
	pr := &proxyReq{who: who, route: route, prefix: prefix, path: path, host: hostHeader(route), secure: r.TLS != nil, stripAuth: stripAuth}
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), proxyCtxKey{}, pr)))
}

func hostHeader(r store.Route) string {
	if r.Port == 80 || r.Port == 443 {
		return r.Host
	}
	return net.JoinHostPort(r.Host, strconv.Itoa(r.Port))
}

func (p *webProxy) rewrite(pr *httputil.ProxyRequest) {
	req := fromCtx(pr.In.Context())
	out := pr.Out
	out.URL.Scheme = p.schemeOf(req.route)
	// The URL host is the handle: the Transport's connection pool is then
	// per handle, and dial knows where to go.
	out.URL.Host = req.route.Handle
	setRequestPath(out.URL, req.path)
	// ReverseProxy re-encodes a query it cannot parse (one with a ';'),
	// dropping those parameters: the camera gets the query as sent.
	out.URL.RawQuery = pr.In.URL.RawQuery
	out.Host = req.host
	// The camera must never see the relay's own cookies or credentials.
	stripRelayCookies(out.Header)
	out.Header.Del("X-Admin-Api-Key")
	if req.stripAuth {
		out.Header.Del("Authorization")
	}
	// Cameras that check Origin/Referer against themselves see their own.
	camera := out.URL.Scheme + "://" + req.host
	if out.Header.Get("Origin") != "" {
		out.Header.Set("Origin", camera)
	}
	if ref := out.Header.Get("Referer"); ref != "" {
		if i := strings.Index(ref, "/c/"+req.route.Handle); i >= 0 && req.prefix != "" {
			out.Header.Set("Referer", camera+rewrite.StripPrefix(ref[i:], req.prefix))
		}
	}
}

// setRequestPath makes u's request line carry p, an escaped path, byte for
// byte. Setting the escaped form as Path escaped it a second time (a%20b
// reached the camera as a%2520b); Path and RawPath together give it back
// whenever p is a form url.URL accepts as its own encoding, and Opaque is
// written verbatim for the rest (say a raw '|', which would otherwise come
// out as %7C and take every other escape with it, %2F turning into '/').
// A path starting with "//" cannot be Opaque (it would read as a host).
func setRequestPath(u *url.URL, p string) {
	u.Opaque = ""
	u.RawPath = p
	if dec, err := url.PathUnescape(p); err == nil {
		u.Path = dec
	} else {
		u.Path = p
	}
	if u.EscapedPath() != p && !strings.HasPrefix(p, "//") {
		u.Opaque = p
	}
}

// requestPath is the escaped path of r's request-target as the client sent
// it: url.URL's EscapedPath re-encodes the whole path when one character
// is not in the form it would choose itself.
func requestPath(r *http.Request) string {
	p := r.RequestURI
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if !strings.HasPrefix(p, "/") { // absolute-form, "*", or a server-made request
		return r.URL.EscapedPath()
	}
	return p
}

func stripRelayCookies(h http.Header) {
	cookies := h.Values("Cookie")
	if len(cookies) == 0 {
		return
	}
	h.Del("Cookie")
	var keep []string
	for _, line := range cookies {
		for _, c := range strings.Split(line, ";") {
			name, _, _ := strings.Cut(strings.TrimSpace(c), "=")
			if name == sessionCookie || name == loginCSRF || name == handleCookie || name == appCookie || name == "" {
				continue
			}
			keep = append(keep, strings.TrimSpace(c))
		}
	}
	if len(keep) > 0 {
		h.Set("Cookie", strings.Join(keep, "; "))
	}
}

// modifyResponse maps the camera's URLs and cookies into the prefix.
func (p *webProxy) modifyResponse(resp *http.Response) error {
	req := fromCtx(resp.Request.Context())
	if req.prefix == "" { // subdomain mode: the camera owns the origin
		return nil
	}
	hosts := []string{req.host, req.route.Host}
	h := resp.Header
	for _, k := range []string{"Location", "Content-Location"} {
		if v := h.Get(k); v != "" {
			h.Set(k, rewrite.Location(v, req.prefix, hosts))
		}
	}
	if v := h.Get("Refresh"); v != "" {
		h.Set("Refresh", rewrite.Refresh(v, req.prefix, hosts))
	}
	if cs := h.Values("Set-Cookie"); len(cs) > 0 {
		h.Del("Set-Cookie")
		for _, c := range cs {
			h.Add("Set-Cookie", rewrite.SetCookie(c, req.prefix, req.secure))
		}
	}
	// Remember the handle this browser uses, to route the absolute-path
	// requests that camera JavaScript makes outside the prefix.
	h.Add("Set-Cookie", (&http.Cookie{Name: handleCookie, Value: req.route.Handle, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: req.secure}).String())
	return nil
}

func (p *webProxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	req := fromCtx(r.Context())
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		if cause := context.Cause(r.Context()); errors.Is(cause, errBadCredential) {
			// Cut by a revocation (untilRevoked) before the camera answered.
			p.errorPage(w, r, cause, "sign-in")
		}
		return // otherwise the browser went away
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && !errors.Is(err, ErrTimeout) {
		err = fmt.Errorf("%w: no answer within %v", ErrTimeout, p.cfg.CameraTimeout)
	}
	if HTTPStatus(err) == http.StatusInternalServerError {
		err = fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	p.errorPage(w, r, err, "Device "+req.host)
}

// dial opens a tunnel for the Transport through the Dialer, as the
// principal of the request that asked for the connection (its proxyReq
// rides in ctx). The handle arrives as the host of addr. The Transport
// pools connections per handle, and every request that may reuse one
// passed the same tenant check in its handler.
func (p *webProxy) dial(ctx context.Context, _, addr string) (net.Conn, error) {
	h, _, _ := net.SplitHostPort(addr)
	pr := fromCtx(ctx)
	if pr == nil || pr.route.Handle != h {
		return nil, fmt.Errorf("%w: dial of %s outside a proxied request", ErrUnknownHandle, h)
	}
	return p.dialer.Dial(ctx, pr.who, h, DialOptions{Path: PathWeb})
}

// dialTLS opens a tunnel and speaks TLS 1.2 or 1.3 to the camera over it.
// Cameras have self-signed certificates, so the chain is not verified;
// instead the first certificate seen per handle is audited, and a change
// of it later is audited as a warning.
func (p *webProxy) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := p.dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	h, _, _ := net.SplitHostPort(addr)
	tc := tls.Client(c, &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // cameras' certificates are self-signed; see recordCert
		ServerName:         "",
	})
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("%w: TLS handshake with camera: %v", ErrUnreachable, err)
	}
	p.recordCert(h, tc.ConnectionState())
	return tc, nil
}

func (p *webProxy) recordCert(handle string, cs tls.ConnectionState) {
	if len(cs.PeerCertificates) == 0 {
		return
	}
	leaf := cs.PeerCertificates[0]
	sum := sha256.Sum256(leaf.Raw)
	fp := "sha256:" + hex.EncodeToString(sum[:])
	ctx := context.Background()
	now := p.cfg.Now()
	old, err := p.store.GetCameraCert(ctx, handle)
	tenant := ""
	if r, rerr := p.routes.resolve(ctx, handle); rerr == nil {
		tenant = r.TenantID
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		p.audit(store.AuditEvent{TenantID: tenant, Actor: "relay", Action: "camera.tls_first_seen", Target: handle, Detail: fmt.Sprintf("subject %q fingerprint %s", leaf.Subject.String(), fp)})
		p.store.PutCameraCert(ctx, store.CameraCert{Handle: handle, Subject: leaf.Subject.String(), Fingerprint: fp, FirstSeen: now, LastSeen: now})
	case err == nil && old.Fingerprint != fp:
		p.log.Warn("camera certificate changed", "handle", handle, "old", old.Fingerprint, "new", fp)
		p.audit(store.AuditEvent{TenantID: tenant, Actor: "relay", Action: "camera.tls_changed", Target: handle, Detail: fmt.Sprintf("WARNING fingerprint %s → %s, subject %q", old.Fingerprint, fp, leaf.Subject.String())})
		p.store.PutCameraCert(ctx, store.CameraCert{Handle: handle, Subject: leaf.Subject.String(), Fingerprint: fp, FirstSeen: old.FirstSeen, LastSeen: now})
	}
}

// schemeOf is the camera port's scheme: learnt by probing once per handle
// (probeScheme), with the conventional ports as the first guess.
func (p *webProxy) schemeOf(r store.Route) string {
	if v, ok := p.scheme.Load(r.Handle); ok {
		return v.(string)
	}
	switch r.Port {
	case 443, 8443, 7443, 9443:
		return "https"
	}
	return "http"
}

// probeScheme learns whether a device port speaks TLS: a ClientHello that
// gets a TLS answer means https; a non-TLS answer or a closed connection
// means http. It runs once per handle on a port that is not 80.
func (p *webProxy) probeScheme(ctx context.Context, who Principal, r store.Route) {
	if r.Port == 80 {
		return
	}
	if _, ok := p.scheme.Load(r.Handle); ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := p.dialer.Dial(ctx, who, r.Handle, DialOptions{Path: PathWeb})
	if err != nil {
		return // the real request will report it
	}
	defer c.Close()
	tc := tls.Client(c, &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true})
	err = tc.HandshakeContext(ctx)
	var rh tls.RecordHeaderError
	switch {
	case err == nil:
		p.scheme.Store(r.Handle, "https")
		p.recordCert(r.Handle, tc.ConnectionState())
	case errors.As(err, &rh), strings.Contains(err.Error(), "EOF"), strings.Contains(err.Error(), "reset"):
		p.scheme.Store(r.Handle, "http")
	}
}

// CloseIdleCameraConns drops the proxy's idle connections to cameras, so
// the next request dials (and handshakes) anew.
func (s *Server) CloseIdleCameraConns() { s.browser.web.tr.CloseIdleConnections() }
