package relay

import (
	"net/http"

	"github.com/nanodems/connector/internal/version"
)

// routesMux is the relay's HTTP surface: each route and the part of the
// operator edge that serves it (edge.go lists the parts). Every route is
// in docs/api.md.
func (s *Server) routesMux() http.Handler {
	auth, mgmt, cli := s.auth, s.mgmt, s.cli
	m := newRouteTable()
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "node": s.cfg.NodeName, "version": version.Get().String()})
	})
	m.HandleFunc("GET /healthz/live", s.handleLive)   // relay/health.go
	m.HandleFunc("GET /healthz/ready", s.handleReady) // 503 while draining or the database is away
	m.HandleFunc("POST /api/enroll", s.enroll.handleEnroll)
	m.HandleFunc("POST /api/claim", s.claim.handleClaim) // embedded agents: relay/claim.go
	// Browsers ask every origin for /favicon.ico; the relay answers it, so
	// the request is neither a 404 nor routed to a camera that has none.
	m.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=86400")
		w.WriteHeader(http.StatusNoContent)
	})

	// The management API (managementAPI), for API credentials.
	m.HandleFunc("POST /api/admin/tenants", auth.api(mgmt.createTenant))
	m.HandleFunc("POST /api/tenants/{tenantId}/users", auth.api(mgmt.createUser))
	m.HandleFunc("POST /api/users/{userId}/tokens", auth.api(mgmt.createToken))
	m.HandleFunc("DELETE /api/users/{userId}/tokens/{tokenId}", auth.api(mgmt.revokeToken))
	m.HandleFunc("POST /api/tenants/{tenantId}/sites", auth.api(mgmt.createSite))
	m.HandleFunc("GET /api/sites/{siteId}", auth.api(mgmt.getSite))
	m.HandleFunc("PATCH /api/sites/{siteId}", auth.api(mgmt.patchSite))
	m.HandleFunc("POST /api/sites/{siteId}/enrollment-tokens", auth.api(mgmt.createEnrollmentToken))
	m.HandleFunc("POST /api/sites/{siteId}/installers/{os}", auth.api(s.install.createInstaller)) // relay/installer.go
	m.HandleFunc("POST /api/sites/{siteId}/devices", auth.api(mgmt.createDevice))
	m.HandleFunc("GET /api/sites/{siteId}/devices", auth.api(mgmt.listDevices)) // paged lists: relay/api_lists.go
	m.HandleFunc("GET /api/tenants/{tenantId}/sites", auth.api(mgmt.listSites))
	m.HandleFunc("GET /api/tenants/{tenantId}/users", auth.api(mgmt.listUsers))
	m.HandleFunc("GET /api/users/{userId}/tokens", auth.api(mgmt.listUserTokens))
	m.HandleFunc("GET /api/sites/{siteId}/handles", auth.api(mgmt.listSiteHandles))
	m.HandleFunc("POST /api/devices/{deviceId}/ports/{port}/handle", auth.api(mgmt.ensureHandle)) // relay/api_handles.go
	m.HandleFunc("GET /api/devices/{deviceId}/handles", auth.api(mgmt.listDeviceHandles))
	m.HandleFunc("DELETE /api/handles/{handle}", auth.api(mgmt.revokeHandle))
	m.HandleFunc("POST /api/handles/{handle}/rotate", auth.api(mgmt.rotateHandle))
	m.HandleFunc("DELETE /api/users/{userId}", auth.api(mgmt.disableUser)) // relay/api_users.go
	m.HandleFunc("POST /api/admin/users/{userId}/superadmin", auth.api(mgmt.setSuperadmin))
	m.HandleFunc("GET /api/admin/tenants", auth.api(mgmt.listTenants))
	m.HandleFunc("GET /api/devices/{deviceId}", auth.api(mgmt.getDevice))
	m.HandleFunc("PATCH /api/devices/{deviceId}", auth.api(mgmt.patchDevice))
	m.HandleFunc("DELETE /api/devices/{deviceId}", auth.api(mgmt.deleteDevice))
	m.HandleFunc("GET /api/sites/{siteId}/agents", auth.api(mgmt.listAgents))
	m.HandleFunc("POST /api/agents/{agentId}/revoke", auth.api(mgmt.revokeAgent))
	m.HandleFunc("GET /api/agents", auth.api(mgmt.listTenantAgents))           // relay/api_agents_list.go
	m.HandleFunc("GET /api/agents/{agentId}/stats", auth.api(mgmt.agentStats)) // relay/api_stats.go
	m.HandleFunc("GET /api/sites/{siteId}/stats", auth.api(mgmt.siteStats))
	m.HandleFunc("GET /api/devices/{deviceId}/stats", auth.api(mgmt.deviceStats))
	m.HandleFunc("GET /api/audit", auth.api(mgmt.listAudit))
	m.HandleFunc("POST /api/sites/{siteId}/devices/bulk", auth.api(mgmt.createDevicesBulk)) // relay/api_bulk.go

	// OpCon licenses (relay/licenses.go) and partner keys
	// (relay/partner_keys.go), issued by the admin key; the CLI sessions
	// a partner key mints (partnerSessions, relay/partner_sessions.go).
	m.HandleFunc("POST /api/admin/tenants/{tenantId}/licenses", auth.api(mgmt.createLicense))
	m.HandleFunc("DELETE /api/admin/tenants/{tenantId}/licenses/{licenseId}", auth.api(mgmt.revokeLicense))
	m.HandleFunc("GET /api/tenants/{tenantId}/licenses", auth.api(mgmt.listLicenses))
	m.HandleFunc("POST /api/admin/tenants/{tenantId}/partner-keys", auth.api(mgmt.createPartnerKey))
	m.HandleFunc("GET /api/admin/tenants/{tenantId}/partner-keys", auth.api(mgmt.listPartnerKeys))
	m.HandleFunc("DELETE /api/admin/tenants/{tenantId}/partner-keys/{keyId}", auth.api(mgmt.revokePartnerKey))
	m.HandleFunc("POST /api/v1/sessions", s.partner.partnerAPI(s.partner.createSession))
	m.HandleFunc("GET /api/v1/sessions", s.partner.partnerAPI(s.partner.listSessions))
	m.HandleFunc("DELETE /api/v1/sessions/{tokenHash}", s.partner.partnerAPI(s.partner.revokeSession))

	// Discoveries and probes on a site's LAN (lanScans, relay/api_discover.go).
	m.HandleFunc("POST /api/sites/{siteId}/discoveries", auth.api(s.scans.startDiscovery))
	m.HandleFunc("POST /api/sites/{siteId}/probes", auth.api(s.scans.startProbe))
	m.HandleFunc("GET /api/sites/{siteId}/runs/{runId}", auth.api(s.scans.getRun))

	// The downloads (downloadsPart): no sign-in.
	m.HandleFunc("GET /api/downloads", s.dl.handleDownloadList)
	m.HandleFunc("GET /downloads/{file}", s.dl.handleDownload)

	m.HandleFunc("GET /api/tunnel/{handle}", s.tunnels.handleTunnel)
	m.HandleFunc("POST /api/handles/{handle}/rtsp-url", auth.api(s.rtspGW.mintRTSPURL))                    // docs/rtsp.md
	m.HandleFunc("POST /api/tenants/{tenantId}/rtsp-credentials", auth.api(s.rtspGW.createRTSPCredential)) // relay/rtsp_creds.go
	m.HandleFunc("GET /api/tenants/{tenantId}/rtsp-credentials", auth.api(s.rtspGW.listRTSPCredentials))
	m.HandleFunc("DELETE /api/tenants/{tenantId}/rtsp-credentials/{id}", auth.api(s.rtspGW.revokeRTSPCredential))

	// The browser side (docs/browser.md): signIn, then browserProxy.
	m.HandleFunc("GET /login", s.signin.handleLoginPage)
	m.HandleFunc("POST /login", s.signin.handleLogin)
	m.HandleFunc("POST /logout", s.signin.handleLogout)
	m.HandleFunc("POST /switch-tenant", s.signin.handleSwitchTenant)
	m.HandleFunc("GET /c-auth", s.browser.handleCAuth)
	// Its answers are counted by status class (docs/metrics.md).
	m.HandleFunc("/c/{handle}", s.metrics.countWeb(s.browser.handleProxy))
	m.HandleFunc("/c/{handle}/{rest...}", s.metrics.countWeb(s.browser.handleProxy))
	m.HandleFunc("/", s.browser.handleRoot)

	// CLI sessions and the tunnels of nanodems-tunnel run (cliEdge,
	// docs/cli.md).
	m.HandleFunc("POST /api/cli/sessions", cli.cliAPI(cli.createCLISession))
	m.HandleFunc("GET /api/sites/{siteId}/cli-sessions", cli.cliAPI(cli.listCLISessions))
	m.HandleFunc("DELETE /api/cli/sessions/{id}", cli.cliAPI(cli.revokeCLISession))
	m.HandleFunc("GET /api/cli/sessions/plan", cli.handleCLIPlan)
	m.HandleFunc("GET /api/cli/raw-tunnel/{ip}/{port}", cli.handleCLIRawTunnel)
	m.HandleFunc("GET /api/cli/mux", cli.handleCLIMux)

	// The operator console's pages (relay/console.go).
	s.mountConsole(m)
	return m
}

// handler dispatches the subdomain mode's hosts to their device
// (browserProxy) and everything else to the routes.
func (s *Server) handler() http.Handler {
	routes := s.routesMux()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.overloaded(w, r) {
			return
		}
		if h := s.browser.subdomainHandle(r.Host); h != "" {
			s.metrics.countWeb(func(w http.ResponseWriter, r *http.Request) { s.browser.serveSubdomain(w, r, h) })(w, r)
			return
		}
		routes.ServeHTTP(w, r)
	})
}
