package relay

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/nanodems/connector/relay/secret"
	"github.com/nanodems/connector/relay/store"
)

// signIn serves a person's sign-in on the relay's own origin: GET and
// POST /login, POST /logout, POST /switch-tenant (a superadmin acting in
// another tenant) and the home page. It sets the session cookie the
// authenticator reads, and depends on the authenticator (passwords,
// sessions) and the store (sessions live there, so a sign-out holds on
// every relay).
type signIn struct {
	base
	auth *authenticator
}

// Cookies the relay sets. The proxy strips all of them from requests to
// cameras, so a camera never sees a relay session.
const (
	sessionCookie = "nd_session"
	loginCSRF     = "nd_csrf"   // double-submit token of the sign-in form
	handleCookie  = "nd_handle" // the handle a browser is using (routing)
)

// sessionTTL is how long a browser session lasts. Sign-in is cheap and a
// relay session opens cameras, so a working day plus margin, not weeks.
const sessionTTL = 12 * time.Hour

// errCSRF is a form without its session's antiforgery token, worded as
// the operator's guide (§10) words it.
//
//lint:ignore ST1005 the guide's exact sentence, shown to operators as is
var errCSRF = errors.New("Antiforgery token mismatch. Hard-refresh the page (Ctrl+Shift+R) and try again.")

// cookie is a cookie of the relay's own: for the whole origin, never
// readable by scripts.
func cookie(r *http.Request, name, value string, maxAge int, sameSite http.SameSite) *http.Cookie {
	return &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true,
		// Secure on every TLS listener; a plain-HTTP relay is loopback only.
		Secure:   r.TLS != nil,
		SameSite: sameSite,
	}
}

func (s *signIn) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	if _, u, ok := s.auth.sessionFrom(r); ok && r.URL.Query().Get("next") == "" {
		s.home(w, r, u)
		return
	}
	s.loginForm(w, r, http.StatusOK, "", safeNext(r.URL.Query().Get("next")))
}

func (s *signIn) loginForm(w http.ResponseWriter, r *http.Request, code int, msg, next string) {
	tok, _ := secret.New("")
	http.SetCookie(w, cookie(r, loginCSRF, tok, 3600, http.SameSiteStrictMode))
	renderPage(w, code, page{Title: "Sign in", Login: true, CSRF: tok, Next: next, Message: msg, IsError: msg != ""})
}

func (s *signIn) handleLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		renderPage(w, http.StatusBadRequest, page{Title: "Bad request", Message: "the form could not be read", IsError: true})
		return
	}
	c, err := r.Cookie(loginCSRF)
	if err != nil || !equal(c.Value, r.PostForm.Get("csrf")) {
		renderPage(w, http.StatusBadRequest, page{Title: "Bad request", Message: errCSRF.Error(), IsError: true, Retry: "/login"})
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	u, err := s.auth.checkLogin(r, r.PostForm.Get("email"), r.PostForm.Get("password"))
	var tl *tryLaterError
	switch {
	case errors.As(err, &tl):
		// Not audited: a flood would write a row per refused attempt.
		setRetryAfter(w, err)
		s.loginForm(w, r, tl.code, tl.msg, next)
		return
	case errors.Is(err, errBadCredential):
		s.audit(store.AuditEvent{Actor: "anonymous", Action: "user.signin_failed", Target: r.PostForm.Get("email"), Detail: r.RemoteAddr})
		s.loginForm(w, r, http.StatusUnauthorized, "Wrong email or password.", next)
		return
	case err != nil:
		s.errorPage(w, r, err, "sign-in")
		return
	}
	plain, hash := secret.New(secret.Session)
	csrf, _ := secret.New("")
	ss := store.Session{Hash: hash, UserID: u.ID, TenantID: u.TenantID, CSRF: csrf, CreatedAt: s.cfg.Now(), ExpiresAt: s.cfg.Now().Add(sessionTTL)}
	if err := s.store.CreateSession(r.Context(), ss); err != nil {
		s.errorPage(w, r, err, "sign-in")
		return
	}
	s.audit(store.AuditEvent{TenantID: u.TenantID, Actor: "user:" + u.ID, Action: "user.signin", Target: u.ID, Detail: r.RemoteAddr})
	http.SetCookie(w, cookie(r, sessionCookie, plain, int(sessionTTL/time.Second), http.SameSiteLaxMode))
	http.SetCookie(w, cookie(r, loginCSRF, "", -1, http.SameSiteStrictMode))
	if next == "" {
		next = "/"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// withSessionForm checks a signed-in form post: the session and its
// antiforgery token.
func (s *signIn) withSessionForm(w http.ResponseWriter, r *http.Request) (store.Session, store.User, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	ss, u, ok := s.auth.sessionFrom(r)
	if !ok {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return ss, u, false
	}
	if err := r.ParseForm(); err != nil || !equal(ss.CSRF, r.PostForm.Get("csrf")) {
		renderPage(w, http.StatusBadRequest, page{Title: "Bad request", Message: errCSRF.Error(), IsError: true, Retry: "/"})
		return ss, u, false
	}
	return ss, u, true
}

// handleLogout ends the session server-side: the cookie is worthless from
// then on, wherever a copy of it went.
func (s *signIn) handleLogout(w http.ResponseWriter, r *http.Request) {
	ss, u, ok := s.withSessionForm(w, r)
	if !ok {
		return
	}
	if err := s.store.DeleteSession(r.Context(), ss.Hash); err != nil {
		s.errorPage(w, r, err, "sign-out")
		return
	}
	// What the session opened (tunnels, /c/ requests) ends with it.
	closed := credConns.cut(sessionCred(ss.Hash), errSignedOut)
	s.audit(store.AuditEvent{TenantID: ss.TenantID, Actor: "user:" + u.ID, Action: "user.signout", Target: u.ID, Detail: fmt.Sprintf("tunnels closed: %d", closed)})
	http.SetCookie(w, cookie(r, sessionCookie, "", -1, http.SameSiteLaxMode))
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// handleSwitchTenant lets a superadmin act in another tenant.
func (s *signIn) handleSwitchTenant(w http.ResponseWriter, r *http.Request) {
	ss, u, ok := s.withSessionForm(w, r)
	if !ok {
		return
	}
	if !u.Superadmin {
		renderPage(w, http.StatusForbidden, page{Title: "Forbidden", Message: "only superadmins switch tenants", IsError: true})
		return
	}
	id := r.PostForm.Get("tenant_id")
	if _, err := s.store.GetTenant(r.Context(), id); err != nil {
		s.errorPage(w, r, lookup(err, "tenant "+id), "tenant "+id)
		return
	}
	if err := s.store.SetSessionTenant(r.Context(), ss.Hash, id); err != nil {
		s.errorPage(w, r, err, "tenant switch")
		return
	}
	// Filed under both tenants: the one entered sees who came in, the
	// superadmin's own sees where they went.
	from := ss.TenantID
	s.audit(store.AuditEvent{TenantID: id, Actor: userActor(u, id), Action: "user.switch_tenant", Target: id, Detail: "from " + from + ", home " + u.TenantID})
	if u.TenantID != id {
		s.audit(store.AuditEvent{TenantID: u.TenantID, Actor: userActor(u, id), Action: "user.switch_tenant", Target: id, Detail: "from " + from + ", home " + u.TenantID})
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// home is the signed-in user's start page: the console's Sites.
func (s *signIn) home(w http.ResponseWriter, r *http.Request, _ store.User) {
	http.Redirect(w, r, "/sites", http.StatusSeeOther)
}

// safeNext keeps a post-sign-in redirect on this relay. It returns the
// target as http.Redirect will send it, or "" when that is not a local
// absolute path. The check is on the sent value because Redirect cleans the
// path first: "/x/../\evil.example/" passes a check of the raw value and
// goes out as "/\evil.example/", which browsers read as
// https://evil.example/ (they treat "\" as "/", and drop tabs and newlines
// before reading a URL). Percent-decoded, it must hold no "\", control
// character or leading "//" either: a local path never needs them.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") {
		return ""
	}
	// What Redirect sends: the path cleaned, keeping a trailing slash, and
	// the query as is.
	p, query, hasQuery := strings.Cut(next, "?")
	trailing := strings.HasSuffix(p, "/")
	sent := path.Clean(p)
	if trailing && !strings.HasSuffix(sent, "/") {
		sent += "/"
	}
	if hasQuery {
		sent += "?" + query
	}
	decoded, err := url.PathUnescape(sent)
	if err != nil {
		return ""
	}
	for _, v := range []string{sent, decoded} {
		if strings.HasPrefix(v, "//") || strings.ContainsRune(v, '\\') || strings.ContainsFunc(v, isControl) {
			return ""
		}
	}
	if u, err := url.Parse(sent); err != nil || u.Host != "" || u.Scheme != "" || u.Opaque != "" {
		return ""
	}
	return sent
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func equal(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
