package console

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/nanodems/connector/relay/store"
)

// Identity is the signed-in user of a request, in the tenant their session
// acts in.
type Identity struct {
	UserID     string
	Email      string
	Superadmin bool
	TenantID   string // "" for a superadmin who has not picked a tenant
	TenantName string
	// CSRF is the session's antiforgery token: every state-changing form
	// carries it, and the console refuses a POST without it.
	CSRF string
}

// Backend is what the console needs of the relay: who is signed in, and the
// relay's JSON API, called in-process as that user.
type Backend interface {
	// Identify returns the signed-in user of r's session cookie.
	Identify(r *http.Request) (Identity, bool)
	// Call runs the API route method path (e.g. "GET /api/sites/x",
	// path with its query) as the signed-in user of r: in is sent as the
	// JSON body (nil: none), a 2xx answer is decoded into out (nil:
	// ignored; a *Download: kept as it is, header and body), any other
	// is returned as an *APIError.
	Call(r *http.Request, method, path string, in, out any) error
}

// APIError is a refusal of the API: its status and one-line reason.
type APIError struct {
	Status int
	Reason string
}

func (e *APIError) Error() string { return e.Reason }

// Options configure the console.
type Options struct {
	// Version is shown in the footer.
	Version string
	Logger  *slog.Logger
}

// Handler serves the console's pages.
type Handler struct {
	b    Backend
	st   store.Store
	opts Options
	log  *slog.Logger
}

// New returns the console over a relay's backend and store.
func New(b Backend, st store.Store, o Options) *Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Handler{b: b, st: st, opts: o, log: o.Logger}
}

// Route is one page or form of the console: a net/http pattern with its
// method, and its handler.
type Route struct {
	Pattern string
	Handler http.Handler
}

// Routes is every route of the console, for the relay's mux.
func (h *Handler) Routes() []Route {
	var out []Route
	for _, rt := range h.routes() {
		out = append(out, Route{Pattern: rt.pattern, Handler: rt.handler})
	}
	return out
}

type route struct {
	pattern string
	handler http.Handler
}

// routes is the console's route table: one line per page or form.
func (h *Handler) routes() []route {
	return []route{
		{"GET /console/static/{file}", http.HandlerFunc(serveStatic)},
		{"GET /sites", h.page(h.sitesPage)},
		{"POST /sites", h.form(h.createSite)},
		{"GET /sites/{siteId}", h.page(h.sitePage)},
		{"POST /sites/{siteId}/enrollment", h.form(h.newEnrollment)},
		{"POST /sites/{siteId}/installers/{os}", h.form(h.installer)},
		{"POST /sites/{siteId}/devices", h.form(h.addDevice)},
		{"POST /devices/{deviceId}/ports", h.form(h.editPorts)},
		{"POST /devices/{deviceId}/delete", h.form(h.deleteDevice)},
		{"POST /devices/{deviceId}/open/{port}", h.form(h.openPort)},
		{"POST /devices/{deviceId}/rtsp/{port}", h.form(h.rtspURL)},
		{"POST /handles/{handle}/revoke", h.form(h.revokeHandle)}, // handles.go
		{"POST /handles/{handle}/rotate", h.form(h.rotateHandle)},
		{"GET /cli-sessions", h.page(h.cliSessionsPage)},
		{"POST /cli-sessions", h.form(h.createCLISession)},
		{"POST /cli-sessions/{sessionId}/revoke", h.form(h.revokeCLISession)},
		{"GET /rtsp-credentials", h.page(h.rtspCredsPage)}, // rtsp_creds.go
		{"POST /rtsp-credentials", h.form(h.createRTSPCred)},
		{"POST /rtsp-credentials/{credId}/revoke", h.form(h.revokeRTSPCred)},
		{"GET /download", h.page(h.downloadPage)},
		{"GET /account/tokens", h.page(h.tokensPage)},
		{"POST /account/tokens", h.form(h.createToken)},
		{"POST /account/tokens/{tokenId}/revoke", h.form(h.revokeToken)},
		{"GET /agents", h.page(h.agentsPage)},
		{"POST /agents/{agentId}/revoke", h.form(h.revokeAgent)},
		{"GET /audit", h.page(h.auditPage)},
		{"GET /sites/{siteId}/discover", h.page(h.discoverPage)}, // discover.go
		{"POST /sites/{siteId}/discover", h.form(h.runDiscovery)},
		{"POST /sites/{siteId}/probe", h.form(h.runProbe)},
		{"POST /sites/{siteId}/runs/{runId}/add", h.form(h.addFound)},
	}
}

// call is one request of a signed-in user.
type call struct {
	r   *http.Request
	b   Backend
	Who Identity
}

// Call runs an API route as the signed-in user (Backend.Call).
func (c *call) Call(method, path string, in, out any) error {
	return c.b.Call(c.r, method, path, in, out)
}

// pageFunc serves one page or form; a returned error becomes the error
// page.
type pageFunc func(w http.ResponseWriter, r *http.Request, c *call) error

// page wraps a GET page: without a session the browser is sent to sign in
// and back.
func (h *Handler) page(f pageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who, ok := h.b.Identify(r)
		if !ok {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		h.serve(w, r, &call{r: r, b: h.b, Who: who}, f)
	})
}

// maxForm bounds a form body: the console's forms are a few fields.
const maxForm = 64 << 10

// form wraps a state-changing POST: it needs a session and the session's
// antiforgery token, as a form field (csrf) or, from the console's
// script, the X-CSRF-Token header.
func (h *Handler) form(f pageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who, ok := h.b.Identify(r)
		if !ok {
			h.renderError(w, r, nil, http.StatusUnauthorized, errSignedOut)
			return
		}
		c := &call{r: r, b: h.b, Who: who}
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		if err := r.ParseForm(); err != nil {
			h.renderError(w, r, c, http.StatusBadRequest, fmt.Errorf("the form could not be read: %v", err))
			return
		}
		tok := r.PostForm.Get("csrf")
		if tok == "" {
			tok = r.Header.Get("X-CSRF-Token")
		}
		if !sameToken(who.CSRF, tok) {
			h.renderError(w, r, c, http.StatusBadRequest, errAntiforgery)
			return
		}
		h.serve(w, r, c, f)
	})
}

// serve runs f and turns its error into the error page.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, c *call, f pageFunc) {
	if err := f(w, r, c); err != nil {
		status := http.StatusInternalServerError
		var ae *APIError
		switch {
		case errors.As(err, &ae):
			status = ae.Status
		case errors.Is(err, errNotFound):
			status = http.StatusNotFound
		case errors.Is(err, errNoTenant):
			status = http.StatusBadRequest
		}
		if status == http.StatusInternalServerError {
			h.log.Error("console page failed", "path", r.URL.Path, "err", err)
			err = errors.New("internal error: the relay's log has the details")
		}
		h.renderError(w, r, c, status, err)
	}
}

// The console's own refusals, worded as the operator's guide words them.
var (
	//lint:ignore ST1005 the guide's exact sentence, shown to operators as is
	errAntiforgery = errors.New("Antiforgery token mismatch. Hard-refresh the page (Ctrl+Shift+R) and try again.")
	errSignedOut   = errors.New("authentication required: your session has ended; sign in again")
	errNotFound    = errors.New("no such page")
	errNoTenant    = errors.New("pick a tenant first (top right)")
)

// tenantPath is the API path of the signed-in user's tenant plus rest.
func (c *call) tenantPath(rest string) (string, error) {
	if c.Who.TenantID == "" {
		return "", errNoTenant
	}
	return "/api/tenants/" + url.PathEscape(c.Who.TenantID) + rest, nil
}

// formValue is a trimmed form field.
func formValue(r *http.Request, name string) string { return strings.TrimSpace(r.PostForm.Get(name)) }
