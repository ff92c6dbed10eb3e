package relay

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nanodems/connector/relay/handle"
	"github.com/nanodems/connector/relay/rewrite"
	"github.com/nanodems/connector/relay/secret"
	"github.com/nanodems/connector/relay/store"
)

// browserProxy serves a browser's way to a camera: /c/{handle}/… (the
// device's web UI under a prefix), / (sign-in or home, and the camera
// JavaScript's absolute paths routed back to their handle), GET /c-auth
// and, in the subdomain mode, every request to {label}.<apps domain>.
// It authenticates the caller (the authenticator: session cookie, else an
// API credential), checks the handle (the resolver, the one access check
// Dial also makes) and hands the request to webProxy (proxy.go), which
// dials through the Dialer. Sign-in pages are signIn's.
type browserProxy struct {
	base
	auth      *authenticator
	routes    resolver
	web       *webProxy
	signin    *signIn
	grantKey  []byte        // signs subdomain sign-in grants
	apiTLS    *tls.Config   // the API listener's; nil with plain HTTP
	publicURL func() string // the relay's origin for browsers
}

// appCookie is the session cookie of the subdomain mode: host-only on
// {label}.<apps domain>, so each camera origin has its own.
const appCookie = "nd_app"

// handleProxy serves /c/{handle}/…: the device's web UI, for a signed-in
// user of the handle's tenant (or an API credential, for scripts).
func (s *browserProxy) handleProxy(w http.ResponseWriter, r *http.Request) {
	h := r.PathValue("handle")
	if r.PathValue("rest") == "" && !strings.HasSuffix(r.URL.Path, "/") {
		// Relative links of the camera's root page need the slash.
		http.Redirect(w, r, rewrite.Prefix(h)+"/", http.StatusMovedPermanently)
		return
	}
	prefix := rewrite.Prefix(h)
	path := requestPath(r)
	if rest, ok := strings.CutPrefix(path, prefix); ok && (rest == "" || rest[0] == '/') {
		path = rewrite.StripPrefix(rest, "")
	} else {
		// The prefix itself came with escapes (/c/h%2Dx/…): cut it from
		// the decoded form's escaping instead.
		path = rewrite.StripPrefix(r.URL.EscapedPath(), prefix)
	}
	s.proxyTo(w, r, h, prefix, path)
}

// handleRoot serves / (sign-in or home) and routes absolute-path requests
// that camera JavaScript makes outside the prefix (/ISAPI/…, /doc/…) to the
// handle the browser is using: the Referer's, else the nd_handle cookie's.
// It routes only; proxyTo still checks the user's right to the handle.
func (s *browserProxy) handleRoot(w http.ResponseWriter, r *http.Request) {
	h := rewrite.HandleFromReferer(r.Header.Get("Referer"), r.Host)
	if r.URL.Path == "/" && h == "" {
		// The relay's own root, not a camera's: sign-in, or the console.
		s.signin.handleLoginPage(w, r)
		return
	}
	if h == "" {
		if c, err := r.Cookie(handleCookie); err == nil {
			h = c.Value
		}
	}
	if h == "" {
		if r.URL.Path == "/" {
			s.signin.handleLoginPage(w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/api/") {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no route " + r.Method + " " + r.URL.Path})
			return
		}
		renderPage(w, http.StatusNotFound, page{Title: "Not found", Message: "no page " + r.URL.Path + " here", IsError: true})
		return
	}
	if !isUpgrade(r) {
		// Back into the prefix, so the browser sends the camera's cookies
		// (scoped to /c/{handle}/) with it. 307 keeps method and body;
		// fetch and XHR follow it on their own.
		target := rewrite.Prefix(h) + requestPath(r)
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, target, http.StatusTemporaryRedirect)
		return
	}
	// A WebSocket cannot follow a redirect: proxy it where it is.
	s.proxyTo(w, r, h, rewrite.Prefix(h), requestPath(r))
}

func isUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// proxyTo authorises the request for handle h and proxies it.
func (s *browserProxy) proxyTo(w http.ResponseWriter, r *http.Request, h, prefix, path string) {
	p, byHeader, ok := s.webAuth(w, r)
	if !ok {
		return
	}
	if err := checkBrowserOrigin(r, byHeader); err != nil {
		s.errorPage(w, r, err, "handle "+h)
		return
	}
	route, err := s.routes.route(r.Context(), p, h)
	if err != nil {
		s.errorPage(w, r, err, "handle "+h)
		return
	}
	if p.Admin {
		s.audit(store.AuditEvent{TenantID: route.TenantID, Actor: p.Actor, Action: "proxy.admin_open", Target: h, Detail: r.Method + " " + path})
	}
	s.web.probeScheme(r.Context(), p, route)
	r, done := s.untilRevoked(r, p)
	defer done()
	s.web.serve(w, r, p, route, prefix, path, byHeader)
}

// untilRevoked ties a proxied request to the credential that authorised
// it: revoking the credential cancels the request's context, which ends
// the camera's response mid-stream (an MJPEG or event stream runs for
// hours) and closes a WebSocket it upgraded to. done unregisters it.
func (s *browserProxy) untilRevoked(r *http.Request, p Principal) (_ *http.Request, done func()) {
	ctx, cancel := context.WithCancelCause(r.Context())
	remove := credConns.addUse(p, cancel)
	return r.WithContext(ctx), func() {
		remove()
		cancel(nil)
	}
}

// webAuth finds the principal of a browser request: the session cookie, or
// an API credential. A browser without either is sent to sign in and back.
// byHeader reports that the relay's credential came in the Authorization
// header, which then must not travel on to the camera: with a session, an
// Authorization header is the camera's own login and passes.
func (s *browserProxy) webAuth(w http.ResponseWriter, r *http.Request) (p Principal, byHeader, ok bool) {
	if p, _, ok := s.auth.sessionPrincipal(r); ok {
		return p, false, true
	}
	p, err := s.auth.authenticate(r)
	if err == nil {
		return p, true, true
	}
	if errors.Is(err, errNoCredential) && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		return p, false, false
	}
	s.errorPage(w, r, err, "sign-in")
	return p, false, false
}

// --- subdomain mode ---------------------------------------------------------

// subdomainHandle returns the handle of a request to {label}.<apps domain>.
func (s *browserProxy) subdomainHandle(host string) string {
	if s.cfg.AppsDomain == "" {
		return ""
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	label, ok := strings.CutSuffix(strings.ToLower(host), "."+strings.ToLower(s.cfg.AppsDomain))
	if !ok || strings.Contains(label, ".") {
		return ""
	}
	h, err := handle.FromLabel(label)
	if err != nil {
		return ""
	}
	return h
}

// serveSubdomain proxies a whole origin to one device port: the camera's
// absolute paths, cookies and JavaScript work untouched.
func (s *browserProxy) serveSubdomain(w http.ResponseWriter, r *http.Request, h string) {
	if r.URL.Path == "/__nd/auth" {
		s.acceptGrant(w, r, h)
		return
	}
	var p Principal
	ok := false
	if c, err := r.Cookie(appCookie); err == nil && secret.HasPrefix(c.Value, secret.Session) {
		if ss, err := s.store.GetSession(r.Context(), secret.Hash(c.Value)); err == nil && s.cfg.Now().Before(ss.ExpiresAt) {
			p, ok = Principal{TenantID: ss.TenantID, UserID: ss.UserID, Actor: "user:" + ss.UserID, Cred: sessionCred(ss.Hash)}, true
		}
	}
	if !ok {
		if r.Method != http.MethodGet {
			s.errorPage(w, r, errNoCredential, "sign-in")
			return
		}
		// Sign in on the relay's own origin, which hands back a grant.
		http.Redirect(w, r, strings.TrimRight(s.publicURL(), "/")+"/c-auth?handle="+url.QueryEscape(h)+"&next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		return
	}
	if err := checkBrowserOrigin(r, false); err != nil {
		s.errorPage(w, r, err, "handle "+h)
		return
	}
	route, err := s.routes.route(r.Context(), p, h)
	if err != nil {
		s.errorPage(w, r, err, "handle "+h)
		return
	}
	s.web.probeScheme(r.Context(), p, route)
	r, done := s.untilRevoked(r, p)
	defer done()
	s.web.serve(w, r, p, route, "", requestPath(r), false)
}

// grant is a one-time, 60-second pass from the relay's origin to a
// subdomain: the session cookie cannot cross origins, so the signed-in
// relay vouches for the user in a signed URL.
type grant struct {
	Handle string `json:"h"`
	User   string `json:"u"`
	Tenant string `json:"t"`
	Exp    int64  `json:"e"`
	Nonce  string `json:"n"`
}

// handleCAuth (GET /c-auth?handle=&next=) mints a grant for a signed-in
// user and sends the browser to the handle's subdomain.
func (s *browserProxy) handleCAuth(w http.ResponseWriter, r *http.Request) {
	if s.cfg.AppsDomain == "" {
		renderPage(w, http.StatusNotFound, page{Title: "Not found", Message: "subdomain mode is off on this relay", IsError: true})
		return
	}
	p, _, ok := s.auth.sessionPrincipal(r)
	if !ok {
		http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		return
	}
	h := r.URL.Query().Get("handle")
	if _, err := s.routes.route(r.Context(), p, h); err != nil {
		s.errorPage(w, r, err, "handle "+h)
		return
	}
	label, _ := handle.Label(h)
	nonce := make([]byte, 12)
	rand.Read(nonce)
	g := grant{Handle: h, User: p.UserID, Tenant: p.TenantID, Exp: s.cfg.Now().Add(time.Minute).Unix(), Nonce: base64.RawURLEncoding.EncodeToString(nonce)}
	// The cleaned value, which the subdomain's redirect will send.
	next := safeNext(r.URL.Query().Get("next"))
	if next == "" {
		next = "/"
	}
	scheme := "https"
	if s.apiTLS == nil {
		scheme = "http"
	}
	_, port, _ := net.SplitHostPort(r.Host)
	host := label + "." + s.cfg.AppsDomain
	if port != "" {
		host = net.JoinHostPort(host, port)
	}
	http.Redirect(w, r, scheme+"://"+host+"/__nd/auth?grant="+url.QueryEscape(s.signGrant(g))+"&next="+url.QueryEscape(next), http.StatusSeeOther)
}

func (s *browserProxy) signGrant(g grant) string {
	b, _ := json.Marshal(g)
	body := base64.RawURLEncoding.EncodeToString(b)
	mac := hmac.New(sha256.New, s.grantKey)
	mac.Write([]byte(body))
	return body + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// usedNonces makes a grant one-time within its minute of life.
var usedNonces sync.Map

func (s *browserProxy) acceptGrant(w http.ResponseWriter, r *http.Request, h string) {
	g, err := s.verifyGrant(r.URL.Query().Get("grant"))
	if err == nil && g.Handle != h {
		err = errors.New("grant is for another handle")
	}
	if err == nil {
		if _, dup := usedNonces.LoadOrStore(g.Nonce, g.Exp); dup {
			err = errors.New("grant already used")
		}
	}
	if err != nil {
		renderPage(w, http.StatusForbidden, page{Title: "Forbidden", Message: "sign-in hand-off failed: " + err.Error(), IsError: true})
		return
	}
	plain, hash := secret.New(secret.Session)
	csrf, _ := secret.New("")
	ss := store.Session{Hash: hash, UserID: g.User, TenantID: g.Tenant, CSRF: csrf, CreatedAt: s.cfg.Now(), ExpiresAt: s.cfg.Now().Add(sessionTTL)}
	if err := s.store.CreateSession(r.Context(), ss); err != nil {
		s.errorPage(w, r, err, "sign-in")
		return
	}
	http.SetCookie(w, cookie(r, appCookie, plain, int(sessionTTL/time.Second), http.SameSiteLaxMode))
	next := safeNext(r.URL.Query().Get("next"))
	if next == "" {
		next = "/"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *browserProxy) verifyGrant(v string) (grant, error) {
	var g grant
	body, sig, ok := strings.Cut(v, ".")
	if !ok {
		return g, errors.New("malformed grant")
	}
	mac := hmac.New(sha256.New, s.grantKey)
	mac.Write([]byte(body))
	want := base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return g, errors.New("grant signature does not verify")
	}
	b, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || json.Unmarshal(b, &g) != nil {
		return g, errors.New("malformed grant")
	}
	if s.cfg.Now().Unix() > g.Exp {
		return g, fmt.Errorf("grant expired")
	}
	return g, nil
}
