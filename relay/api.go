package relay

import (
	"net/http"

	"github.com/nanodems/connector/internal/version"
)

// routesMux is the relay's HTTP surface. Every route is in docs/api.md.
func (s *Server) routesMux() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "node": s.cfg.NodeName, "version": version.Get().String()})
	})
	m.HandleFunc("POST /api/enroll", s.handleEnroll)
	// Browsers ask every origin for /favicon.ico; the relay answers it, so
	// the request is neither a 404 nor routed to a camera that has none.
	m.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=86400")
		w.WriteHeader(http.StatusNoContent)
	})

	m.HandleFunc("POST /api/admin/tenants", s.api(s.createTenant))
	m.HandleFunc("POST /api/tenants/{tenantId}/users", s.api(s.createUser))
	m.HandleFunc("POST /api/users/{userId}/tokens", s.api(s.createToken))
	m.HandleFunc("DELETE /api/users/{userId}/tokens/{tokenId}", s.api(s.revokeToken))
	m.HandleFunc("POST /api/tenants/{tenantId}/sites", s.api(s.createSite))
	m.HandleFunc("GET /api/sites/{siteId}", s.api(s.getSite))
	m.HandleFunc("PATCH /api/sites/{siteId}", s.api(s.patchSite))
	m.HandleFunc("POST /api/sites/{siteId}/enrollment-tokens", s.api(s.createEnrollmentToken))
	m.HandleFunc("POST /api/sites/{siteId}/devices", s.api(s.createDevice))
	m.HandleFunc("GET /api/sites/{siteId}/devices", s.api(s.listDevices)) // paged lists: relay/api_lists.go
	m.HandleFunc("GET /api/tenants/{tenantId}/sites", s.api(s.listSites))
	m.HandleFunc("GET /api/tenants/{tenantId}/users", s.api(s.listUsers))
	m.HandleFunc("GET /api/users/{userId}/tokens", s.api(s.listUserTokens))
	m.HandleFunc("GET /api/sites/{siteId}/handles", s.api(s.listSiteHandles))
	m.HandleFunc("POST /api/devices/{deviceId}/ports/{port}/handle", s.api(s.ensureHandle)) // relay/api_handles.go
	m.HandleFunc("GET /api/devices/{deviceId}", s.api(s.getDevice))
	m.HandleFunc("PATCH /api/devices/{deviceId}", s.api(s.patchDevice))
	m.HandleFunc("DELETE /api/devices/{deviceId}", s.api(s.deleteDevice))
	m.HandleFunc("GET /api/sites/{siteId}/agents", s.api(s.listAgents))
	m.HandleFunc("POST /api/agents/{agentId}/revoke", s.api(s.revokeAgent))
	m.HandleFunc("GET /api/audit", s.api(s.listAudit))

	m.HandleFunc("GET /api/tunnel/{handle}", s.handleTunnel)
	m.HandleFunc("POST /api/handles/{handle}/rtsp-url", s.api(s.mintRTSPURL)) // relay/rtsp.go, docs/rtsp.md

	// The browser side (docs/browser.md).
	m.HandleFunc("GET /login", s.handleLoginPage)
	m.HandleFunc("POST /login", s.handleLogin)
	m.HandleFunc("POST /logout", s.handleLogout)
	m.HandleFunc("POST /switch-tenant", s.handleSwitchTenant)
	m.HandleFunc("GET /c-auth", s.handleCAuth)
	m.HandleFunc("/c/{handle}", s.handleProxy)
	m.HandleFunc("/c/{handle}/{rest...}", s.handleProxy)
	m.HandleFunc("/", s.handleRoot)

	// CLI sessions and the tunnels of nanodems-tunnel run (docs/cli.md).
	m.HandleFunc("POST /api/cli/sessions", s.cliAPI(s.createCLISession))
	m.HandleFunc("GET /api/sites/{siteId}/cli-sessions", s.cliAPI(s.listCLISessions))
	m.HandleFunc("DELETE /api/cli/sessions/{id}", s.cliAPI(s.revokeCLISession))
	m.HandleFunc("GET /api/cli/sessions/plan", s.handleCLIPlan)
	m.HandleFunc("GET /api/cli/raw-tunnel/{ip}/{port}", s.handleCLIRawTunnel)
	m.HandleFunc("GET /api/cli/mux", s.handleCLIMux)

	// The operator console's pages (relay/console.go).
	s.mountConsole(m)
	return m
}

// handler dispatches the subdomain mode's hosts to their device and
// everything else to the routes.
func (s *Server) handler() http.Handler {
	routes := s.routesMux()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.overloaded(w, r) {
			return
		}
		if h := s.subdomainHandle(r.Host); h != "" {
			s.serveSubdomain(w, r, h)
			return
		}
		routes.ServeHTTP(w, r)
	})
}

// apiFunc is an authenticated JSON handler; a returned error becomes the
// response.
type apiFunc func(w http.ResponseWriter, r *http.Request, p Principal) error

func (s *Server) api(f apiFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authenticate(r)
		if err == nil {
			err = f(w, r, p)
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	}
}
