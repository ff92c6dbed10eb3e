package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"

	"github.com/nanodems/connector/internal/version"
	"github.com/nanodems/connector/relay/console"
	"github.com/nanodems/connector/relay/rewrite"
)

// The operator console (relay/console) over this relay. The console is a
// client of the relay's API: consoleBackend runs an API route in-process
// as the signed-in user of the console's request, so what the console
// shows and changes goes through exactly the checks of the API.

// consoleBackend implements console.Backend.
type consoleBackend struct {
	base
	auth    *authenticator
	browser *browserProxy // a camera script's absolute paths
	api     http.Handler  // the relay's routes (routesMux)
}

// mountConsole adds the console's pages to the relay's routes m.
func (s *Server) mountConsole(m *routeTable) {
	b := &consoleBackend{base: s.base, auth: s.auth, browser: s.browser, api: m}
	c := console.New(b, s.store, console.Options{Version: version.Get().String(), Logger: s.log})
	for _, rt := range c.Routes() {
		m.Handle(rt.Pattern, b.consoleRoute(rt.Handler))
	}
}

// consoleRoute serves a console page, except to a camera's own script: a
// request from a /c/{handle}/ page for an absolute path (a camera may
// have its own /sites or /download) goes to the camera, as every other
// absolute path does (handleRoot).
func (b *consoleBackend) consoleRoute(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rewrite.HandleFromReferer(r.Header.Get("Referer"), r.Host) != "" {
			b.browser.handleRoot(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (b *consoleBackend) Identify(r *http.Request) (console.Identity, bool) {
	ss, u, ok := b.auth.sessionFrom(r)
	if !ok {
		return console.Identity{}, false
	}
	id := console.Identity{UserID: u.ID, Email: u.Email, Superadmin: u.Superadmin, TenantID: ss.TenantID, CSRF: ss.CSRF}
	if ss.TenantID != "" {
		if t, err := b.store.GetTenant(r.Context(), ss.TenantID); err == nil {
			id.TenantName = t.Name
		} else {
			id.TenantName = ss.TenantID
		}
	}
	return id, true
}

// consolePrincipalKey carries the principal of an API call the console
// makes in-process. Only this package can set it, so no request from the
// network can claim one.
type consolePrincipalKey struct{}

// consolePrincipal is the principal of a console call, if r is one.
func consolePrincipal(r *http.Request) (Principal, bool) {
	p, ok := r.Context().Value(consolePrincipalKey{}).(Principal)
	return p, ok
}

// maxConsoleAnswer bounds an API answer the console reads: a page of
// 1,000 devices with their handles is well under it.
const maxConsoleAnswer = 32 << 20

func (b *consoleBackend) Call(r *http.Request, method, path string, in, out any) error {
	p, _, ok := b.auth.sessionPrincipal(r)
	if !ok {
		return &console.APIError{Status: http.StatusUnauthorized, Reason: errNoCredential.Error()}
	}
	var body io.Reader = http.NoBody
	if in != nil {
		j, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(context.WithValue(r.Context(), consolePrincipalKey{}, p), method, path, body)
	if err != nil {
		return err
	}
	// The API words some answers for the caller's address (enrollment
	// commands, RTSP URLs): the console's request is that caller.
	req.Host, req.TLS, req.RemoteAddr = r.Host, r.TLS, r.RemoteAddr
	req.Header.Set("Content-Type", "application/json")
	rec := &apiAnswer{header: http.Header{}}
	b.api.ServeHTTP(rec, req)
	if rec.code == 0 {
		rec.code = http.StatusOK
	}
	if rec.code/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(rec.body.Bytes(), &e) != nil || e.Error == "" {
			e.Error = http.StatusText(rec.code)
		}
		return &console.APIError{Status: rec.code, Reason: e.Error}
	}
	if dl, ok := out.(*console.Download); ok {
		dl.Header, dl.Body = rec.header, bytes.Clone(rec.body.Bytes())
		return nil
	}
	if out != nil && rec.body.Len() > 0 {
		return json.Unmarshal(rec.body.Bytes(), out)
	}
	return nil
}

// apiAnswer records the answer of an in-process API call.
type apiAnswer struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (a *apiAnswer) Header() http.Header { return a.header }

func (a *apiAnswer) WriteHeader(code int) {
	if a.code == 0 {
		a.code = code
	}
}

func (a *apiAnswer) Write(p []byte) (int, error) {
	if a.code == 0 {
		a.code = http.StatusOK
	}
	if a.body.Len()+len(p) > maxConsoleAnswer {
		return 0, errAnswerTooLarge
	}
	return a.body.Write(p)
}

var errAnswerTooLarge = &console.APIError{Status: http.StatusInternalServerError, Reason: "API answer too large for the console"}
