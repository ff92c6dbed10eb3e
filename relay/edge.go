package relay

import "github.com/nanodems/connector/internal/dist"

// The operator edge is every way a person or a program reaches the relay
// over its HTTPS listener (and the RTSP gateway's own). It is a set of
// parts, each a small type in its own file that serves some routes and
// depends on a few things it is given here, never on the Server:
//
//   - authenticator (auth.go, password.go): who is calling, from the admin
//     key, an nt_ token, Basic or the session cookie; wraps API routes.
//   - managementAPI (api_tenants.go, api_devices.go, api_agents.go,
//     api_agents_list.go): /api/admin/tenants, /api/tenants/…,
//     /api/users/…, /api/sites/…, /api/devices/…, /api/agents,
//     /api/agents/…, /api/audit.
//   - enroller (enroll.go): POST /api/enroll.
//   - signIn (signin.go): /login, /logout, /switch-tenant.
//   - browserProxy (web.go; webProxy in proxy.go): /c/{handle}/…, /,
//     /c-auth and the subdomain mode's hosts.
//   - wsTunnels (tunnel_ws.go): /api/tunnel/{handle}.
//   - cliEdge (cli_sessions.go, cli_tunnel.go): /api/cli/…,
//     /api/sites/{siteId}/cli-sessions.
//   - partnerSessions (partner_sessions.go): /api/v1/sessions, CLI
//     sessions minted by a partner's server with its nk_ key.
//   - rtspGateway (rtsp.go): the RTSP listener and
//     /api/handles/{handle}/rtsp-url.
//   - downloadsPart (downloads.go): /downloads/{file}, /api/downloads.
//   - consoleBackend (console.go): the console's pages (relay/console),
//     mounted by routesMux, calling the API routes in-process.
//   - claimer (claim.go): POST /api/claim, embedded agents.
//   - installers (installer.go): /api/sites/{siteId}/installers/{os},
//     the per-site Linux and Windows installers.
//   - lanScans (api_discover.go): discoveries and probes run by a site's
//     agent, /api/sites/{siteId}/discoveries, …/probes, …/runs/{runId}.
//
// What they share (the configuration, the store, the log, audit and the
// error answers) is base (base.go). Every part that reaches a device does
// it through the Dialer (dial.go) and checks a handle through the
// resolver: both are the Server, and could be anything else that keeps
// their contract.

// wireEdge makes the parts of the operator edge and gives each what it
// depends on. It runs once, in New, after the secrets are loaded.
func (s *Server) wireEdge(catalog *dist.Catalog) {
	b := s.base
	s.auth = &authenticator{base: b, adminKeyHash: s.adminKeyHash, pw: newPasswordGate()}
	s.mgmt = &managementAPI{base: b, auth: s.auth, sealer: s.sealer, agents: s.agents, agentSide: s, apiPin: s.apiPin}
	s.enroll = &enroller{base: b, ca: s.ca, publicAgentAddr: s.publicAgentAddr}
	s.signin = &signIn{base: b, auth: s.auth}
	s.browser = &browserProxy{
		base: b, auth: s.auth, routes: s, signin: s.signin,
		web:      newWebProxy(b, s, s, s.sealer, s.cfg.CameraTimeout),
		grantKey: s.grantKey, apiTLS: s.apiTLS, publicURL: s.publicURL,
	}
	s.cli = &cliEdge{base: b, auth: s.auth, dialer: s, routes: s, apiPin: s.apiPin, done: s.done, drain: s.drainCh, live: &s.metrics.cliLive,
		late: func(addr string) (string, bool) { _, reason, late := s.lateRefusal(addr); return reason, late }}
	s.tunnels = &wsTunnels{base: b, auth: s.auth, dialer: s, routes: s, cli: s.cli}
	s.partner = &partnerSessions{base: b, cli: s.cli}
	s.rtspGW = &rtspGateway{base: b, grantKey: s.grantKey, dialer: s, routes: s, sealer: s.sealer, drain: s.drainCh, apiTLS: s.apiTLS}
	s.dl = &downloadsPart{base: b, catalog: catalog}
	s.claim = newClaimer(b, s.ca, s.publicAgentAddr)
	s.install = &installers{base: b, mgmt: s.mgmt, apiPin: s.apiPin}
	s.scans = &lanScans{base: b, auth: s.auth, runner: s}
}
