package console

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/nanodems/connector/relay/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pages holds each page's template, parsed once: the layout plus the
// page's own file, which defines "title" and "content".
var pages = parsePages()

var funcs = template.FuncMap{
	"ago":   ago,
	"when":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"asset": assetURL,
	"bytes": func(n int64) string { return humanBytes(uint64(max(n, 0))) },
	"join": func(v []int, sep string) string {
		s := make([]string, len(v))
		for i, n := range v {
			s[i] = fmt.Sprint(n)
		}
		return strings.Join(s, sep)
	},
}

func parsePages() map[string]*template.Template {
	base := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html"))
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(path.Base(n), ".html")
		if name == "layout" {
			continue
		}
		out[name] = template.Must(template.Must(base.Clone()).ParseFS(templateFS, n))
	}
	return out
}

// view is what the layout renders around a page's data.
type view struct {
	Who     Identity
	Tenants []store.Tenant // the superadmin's tenant picker
	Flash   string
	Nav     string // the top bar's current section
	Version string
	Data    any
}

// flashCookie carries a one-line message across a redirect (303 after a
// form); the next page shows it once.
const flashCookie = "nd_flash"

// redirect answers a form with 303 to a console page, with a flash
// message for it.
func (h *Handler) redirect(w http.ResponseWriter, r *http.Request, to, flash string) error {
	if flash != "" {
		http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: url.QueryEscape(flash), Path: "/", MaxAge: 60,
			HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}

// takeFlash reads and clears the flash message.
func takeFlash(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(flashCookie)
	if err != nil {
		return ""
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Path: "/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	v, _ := url.QueryUnescape(c.Value)
	return v
}

// render writes page name with data inside the layout. It renders into a
// buffer first, so a template error is an error page, not half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, c *call, status int, name, nav string, data any) error {
	return h.renderFlash(w, r, c, status, name, nav, data, "")
}

// renderFlash is render with a flash message of its own: a form that
// answers with a page rather than a redirect.
func (h *Handler) renderFlash(w http.ResponseWriter, r *http.Request, c *call, status int, name, nav string, data any, flash string) error {
	t, ok := pages[name]
	if !ok {
		return fmt.Errorf("console: no template %q", name)
	}
	v := view{Flash: takeFlash(w, r), Nav: nav, Version: h.opts.Version, Data: data}
	if flash != "" {
		v.Flash = flash
	}
	if c != nil {
		v.Who = c.Who
		if c.Who.Superadmin {
			ts, err := h.st.ListTenants(r.Context())
			if err != nil {
				return err
			}
			v.Tenants = ts
		}
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		return fmt.Errorf("console: render %s: %w", name, err)
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "same-origin")
	hdr.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}

// errorView is the error page's data.
type errorView struct {
	Status int
	Title  string
	Reason string
	Hints  []string
	Retry  string
}

// renderError shows the error page: the status, the reason in one line,
// and what the operator can do about it, in the guide's words.
func (h *Handler) renderError(w http.ResponseWriter, r *http.Request, c *call, status int, err error) {
	ev := errorView{Status: status, Title: http.StatusText(status), Reason: err.Error(), Hints: hintsFor(status, err.Error())}
	if r.Method == http.MethodGet {
		ev.Retry = r.URL.RequestURI()
	}
	if wantsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		fmt.Fprintf(w, "{\"error\":%q}\n", ev.Reason)
		return
	}
	if rerr := h.render(w, r, c, status, "error", "", ev); rerr != nil {
		h.log.Error("console error page failed", "err", rerr)
		http.Error(w, ev.Reason, status)
	}
}

// hintsFor is the troubleshooting advice of the guide (§10) for a refusal.
func hintsFor(status int, reason string) []string {
	switch {
	case strings.HasPrefix(reason, "Antiforgery"):
		return []string{"If it happens again, sign out and sign in to refresh the cookie."}
	case status == http.StatusUnauthorized:
		return []string{"Sign in again; a revoked or expired session, token or CLI session answers 401."}
	case strings.Contains(reason, "does not belong to your tenant"):
		return []string{"It was made in a different tenant than the one you are acting in. Switch to the owning tenant (top-right tenant picker) and re-open the site."}
	case strings.Contains(reason, "target not in allowlist"):
		return []string{"The agent's allowlist has not picked up a recent device or port yet. Click ✏ on any device of the site and Save to push it again, or restart the agent service."}
	case strings.Contains(reason, "agent reconnecting"), status == http.StatusServiceUnavailable:
		return []string{"The site's agent is offline or reconnecting. Check that the agent host reaches the relay, and the agent service is running."}
	}
	return nil
}

// wantsJSON is a request of the console's script, which asks for JSON.
func wantsJSON(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}

func sameToken(want, got string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}

// assetSums holds a short content hash per static file: asset URLs carry
// it, so a browser caches them for a year and still sees every change.
var assetSums = func() map[string]string {
	out := map[string]string{}
	entries, err := staticFS.ReadDir("static")
	if err != nil {
		panic(err)
	}
	for _, e := range entries {
		b, _ := staticFS.ReadFile("static/" + e.Name())
		sum := sha256.Sum256(b)
		out[e.Name()] = hex.EncodeToString(sum[:6])
	}
	return out
}()

func assetURL(name string) string {
	return "/console/static/" + name + "?v=" + assetSums[name]
}

// serveStatic serves the embedded stylesheet and script.
func serveStatic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	b, err := staticFS.ReadFile("static/" + name)
	if err != nil || strings.Contains(name, "/") {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", mime.TypeByExtension(path.Ext(name)))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.URL.Query().Get("v") == assetSums[name] {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	w.Write(b)
}

// ago is a short, human "how long ago".
func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%d days ago", int(d/(24*time.Hour)))
}
