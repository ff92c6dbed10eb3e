package relay_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/relay"
	"github.com/nanodems/connector/relay/secret"
	"github.com/nanodems/connector/relay/store"
)

// A credential of tenant B's user.
type isoCred string

const (
	credToken  isoCred = "nt_ token"
	credBasic  isoCred = "password (Basic)"
	credCookie isoCred = "session cookie"
	credOps    isoCred = "ops_ CLI session"
	credLic    isoCred = "OpCon license (X-License)"
	credLicSub isoCred = "OpCon license (subprotocol)"
	credNK     isoCred = "nk_ partner key"
	credNKFar  isoCred = "nk_ partner key from outside its CIDR"
)

var allCreds = []isoCred{credToken, credBasic, credCookie, credOps, credLic, credLicSub, credNK, credNKFar}

// isoFixture is two tenants on one relay: A (the demo's) with one of
// everything, and B, whose user makes every request of the matrix.
type isoFixture struct {
	d *demo.Demo
	// Tenant A's ids.
	tenant, user, token, site, device, agent, handle, cli, loopback string
	port                                                            int
	cliHash, license, partnerKey, rtspCred                          string
	// Tenant B.
	bTenant, bUser, bSite, bEmail, bPassword, bToken, bOps, bCSRF string
	bLicense, bNK, bNKFar, bHandle                                string
	bBrowser                                                      *http.Client
	// B's ids, for the columns of B's credentials on B's own objects,
	// and B's revoked nt_ token (isolation_columns_test.go).
	bDevice, bTokenID, bCLI, bCLIHash, bLicenseID, bNKID, bRevoked string
}

// isoRoute is one route of the relay and how to aim it at tenant A.
type isoRoute struct {
	pattern string // exactly as registered in routesMux
	// skip says why the route takes no id of a tenant; such a route is
	// listed so that the table stays complete, and not requested.
	skip string
	// paths are the route's paths with tenant A's ids (several when the
	// route takes more than one id, mixing A's and B's).
	paths func(f *isoFixture) []string
	body  string // JSON body (or form body when form is set)
	form  bool
	ws    bool // a WebSocket route: requests carry a valid upgrade
	// accepts are the credentials the route takes: with them the answer
	// must be 403 or 404. Any other credential may also get 401 or a
	// redirect to the sign-in page, never a 2xx or 5xx.
	accepts []isoCred
	// check replaces the 403/404 rule for routes that answer B with B's
	// own data: it must show nothing of A.
	check func(t *testing.T, f *isoFixture, status int, body string)
	// admin is the admin key's status on the route's GET of A's objects,
	// and own the status of B's accepted credentials on B's own objects,
	// where not 2xx (isolation_columns_test.go).
	admin, own int
}

func paths(ps ...string) func(*isoFixture) []string {
	return func(f *isoFixture) []string {
		out := make([]string, len(ps))
		for i, p := range ps {
			out[i] = f.expand(p)
		}
		return out
	}
}

// expand fills {tenant}, {user}, … with tenant A's ids and {bUser} with
// B's.
func (f *isoFixture) expand(p string) string {
	return strings.NewReplacer(
		"{tenant}", f.tenant, "{user}", f.user, "{token}", f.token, "{site}", f.site, "{device}", f.device,
		"{agent}", f.agent, "{handle}", f.handle, "{cli}", f.cli, "{ip}", f.loopback, "{port}", strconv.Itoa(f.port),
		"{cliHash}", f.cliHash, "{license}", f.license, "{partnerKey}", f.partnerKey,
		"{rtspCred}", f.rtspCred, "{bUser}", f.bUser, "{bSite}", f.bSite, "{bTenant}", f.bTenant,
	).Replace(p)
}

var (
	apiCreds     = []isoCred{credToken, credBasic}
	webCreds     = []isoCred{credToken, credBasic, credCookie}
	tunnelCreds  = []isoCred{credToken, credBasic, credCookie, credOps, credLic, credLicSub}
	partnerCreds = []isoCred{credNK, credNKFar}
	noTenancy    = "takes no id of a tenant"
)

// isolationRoutes is every route of routesMux. A route added there must
// get a row here (TestTenantIsolation fails until it has one): one line
// with its pattern, the path with tenant A's ids, a body if it takes
// one, and the credentials it accepts.
var isolationRoutes = []isoRoute{
	{pattern: "GET /healthz", skip: noTenancy},
	{pattern: "GET /healthz/live", skip: noTenancy},
	{pattern: "GET /healthz/ready", skip: noTenancy},
	{pattern: "POST /api/enroll", skip: "its only credential is the one-shot et_ token in the body, bound to a site (enroll_test.go)"},
	{pattern: "POST /api/claim", skip: "its only credential is a device's serial in the body; the agent it makes is bound to that device's site (claim_test.go)"},
	{pattern: "GET /favicon.ico", skip: noTenancy},
	{pattern: "POST /api/admin/tenants", paths: paths("/api/admin/tenants"), body: `{"name":"by B"}`, accepts: apiCreds},
	{pattern: "POST /api/tenants/{tenantId}/users", paths: paths("/api/tenants/{tenant}/users"), body: `{"email":"intruder@b.invalid","password":"intruder-password-1"}`, accepts: apiCreds},
	{pattern: "POST /api/users/{userId}/tokens", paths: paths("/api/users/{user}/tokens"), accepts: apiCreds},
	{pattern: "DELETE /api/users/{userId}/tokens/{tokenId}", paths: paths("/api/users/{user}/tokens/{token}", "/api/users/{bUser}/tokens/{token}"), accepts: apiCreds},
	{pattern: "POST /api/tenants/{tenantId}/sites", paths: paths("/api/tenants/{tenant}/sites"), body: `{"name":"by B"}`, accepts: apiCreds},
	{pattern: "GET /api/sites/{siteId}", paths: paths("/api/sites/{site}"), accepts: apiCreds},
	{pattern: "PATCH /api/sites/{siteId}", paths: paths("/api/sites/{site}"), body: `{"name":"renamed by B"}`, accepts: apiCreds},
	{pattern: "POST /api/sites/{siteId}/enrollment-tokens", paths: paths("/api/sites/{site}/enrollment-tokens"), accepts: apiCreds},
	{pattern: "POST /api/sites/{siteId}/installers/{os}", paths: paths("/api/sites/{site}/installers/linux", "/api/sites/{site}/installers/windows"), accepts: apiCreds},
	{pattern: "POST /api/sites/{siteId}/devices", paths: paths("/api/sites/{site}/devices"), body: `{"host":"10.9.9.9","ports":[80]}`, accepts: apiCreds},
	{pattern: "GET /api/sites/{siteId}/devices", paths: paths("/api/sites/{site}/devices"), accepts: apiCreds},
	{pattern: "GET /api/devices/{deviceId}", paths: paths("/api/devices/{device}"), accepts: apiCreds},
	{pattern: "PATCH /api/devices/{deviceId}", paths: paths("/api/devices/{device}"), body: `{"label":"renamed by B","ports":[1]}`, accepts: apiCreds},
	{pattern: "DELETE /api/devices/{deviceId}", paths: paths("/api/devices/{device}"), accepts: apiCreds},
	{pattern: "GET /api/sites/{siteId}/agents", paths: paths("/api/sites/{site}/agents"), accepts: apiCreds},
	{pattern: "POST /api/agents/{agentId}/revoke", paths: paths("/api/agents/{agent}/revoke"), accepts: apiCreds},
	{pattern: "GET /api/agents", paths: paths("/api/agents?tenant_id={tenant}"), accepts: apiCreds},
	{pattern: "GET /api/agents/{agentId}/stats", paths: paths("/api/agents/{agent}/stats", "/api/agents/{agent}/stats?range=365d"), accepts: apiCreds},
	{pattern: "GET /api/sites/{siteId}/stats", paths: paths("/api/sites/{site}/stats", "/api/sites/{site}/stats?range=30d"), accepts: apiCreds},
	{pattern: "GET /api/devices/{deviceId}/stats", paths: paths("/api/devices/{device}/stats?range=24h"), accepts: apiCreds},
	{pattern: "GET /api/tenants/{tenantId}/sites", paths: paths("/api/tenants/{tenant}/sites", "/api/tenants/{tenant}/sites?limit=1000"), accepts: apiCreds},
	{pattern: "GET /api/tenants/{tenantId}/users", paths: paths("/api/tenants/{tenant}/users"), accepts: apiCreds},
	{pattern: "GET /api/users/{userId}/tokens", paths: paths("/api/users/{user}/tokens"), accepts: apiCreds},
	{pattern: "GET /api/sites/{siteId}/handles", paths: paths("/api/sites/{site}/handles"), accepts: apiCreds},
	{pattern: "POST /api/devices/{deviceId}/ports/{port}/handle", paths: paths("/api/devices/{device}/ports/{port}/handle", "/api/devices/{device}/ports/554/handle"), accepts: apiCreds},
	{pattern: "POST /api/admin/tenants/{tenantId}/licenses", paths: paths("/api/admin/tenants/{tenant}/licenses"), accepts: apiCreds},
	{pattern: "DELETE /api/admin/tenants/{tenantId}/licenses/{licenseId}", paths: paths("/api/admin/tenants/{tenant}/licenses/{license}", "/api/admin/tenants/{bTenant}/licenses/{license}"), accepts: apiCreds},
	{pattern: "GET /api/tenants/{tenantId}/licenses", paths: paths("/api/tenants/{tenant}/licenses"), accepts: apiCreds},
	{pattern: "POST /api/admin/tenants/{tenantId}/partner-keys", paths: paths("/api/admin/tenants/{tenant}/partner-keys"), accepts: apiCreds},
	{pattern: "GET /api/admin/tenants/{tenantId}/partner-keys", paths: paths("/api/admin/tenants/{tenant}/partner-keys"), accepts: apiCreds, own: 403},
	{pattern: "DELETE /api/admin/tenants/{tenantId}/partner-keys/{keyId}", paths: paths("/api/admin/tenants/{tenant}/partner-keys/{partnerKey}", "/api/admin/tenants/{bTenant}/partner-keys/{partnerKey}"), accepts: apiCreds},
	{pattern: "POST /api/v1/sessions", paths: paths("/api/v1/sessions"), body: `{"external_operator_id":"x","operator_display_name":"y","site_ids":["{site}"]}`, accepts: partnerCreds},
	{pattern: "GET /api/v1/sessions", paths: paths("/api/v1/sessions"), accepts: []isoCred{credNK}, check: sessionsWithoutA},
	{pattern: "DELETE /api/v1/sessions/{tokenHash}", paths: paths("/api/v1/sessions/{cliHash}"), accepts: partnerCreds},
	{pattern: "POST /api/sites/{siteId}/devices/bulk", paths: paths("/api/sites/{site}/devices/bulk"), body: `{"devices":[{"host":"10.9.9.9","ports":[80]}]}`, accepts: apiCreds},
	{pattern: "POST /api/sites/{siteId}/discoveries", paths: paths("/api/sites/{site}/discoveries"), accepts: apiCreds},
	{pattern: "POST /api/sites/{siteId}/probes", paths: paths("/api/sites/{site}/probes"), body: `{"range":"10.9.9.0/30"}`, accepts: apiCreds},
	{pattern: "GET /api/sites/{siteId}/runs/{runId}", paths: paths("/api/sites/{site}/runs/run_x"), accepts: apiCreds},
	{pattern: "GET /api/audit", paths: paths("/api/audit?tenant_id={tenant}", "/api/audit"), accepts: apiCreds, check: onlyOwnAudit},
	{pattern: "GET /api/downloads", skip: "public: the binaries are the same for every tenant"},
	{pattern: "GET /downloads/{file}", skip: "public: the binaries are the same for every tenant"},
	{pattern: "GET /api/tunnel/{handle}", paths: paths("/api/tunnel/{handle}"), ws: true, accepts: tunnelCreds, admin: 426},
	{pattern: "POST /api/handles/{handle}/rtsp-url", paths: paths("/api/handles/{handle}/rtsp-url"), accepts: apiCreds},
	// B's own tenant with A's site: the site is as unknown as one that does not exist.
	{pattern: "POST /api/tenants/{tenantId}/rtsp-credentials", paths: paths("/api/tenants/{tenant}/rtsp-credentials", "/api/tenants/{bTenant}/rtsp-credentials"), body: `{"name":"by B","site_id":"{site}"}`, accepts: apiCreds},
	{pattern: "GET /api/tenants/{tenantId}/rtsp-credentials", paths: paths("/api/tenants/{tenant}/rtsp-credentials"), accepts: apiCreds},
	{pattern: "DELETE /api/tenants/{tenantId}/rtsp-credentials/{id}", paths: paths("/api/tenants/{tenant}/rtsp-credentials/{rtspCred}", "/api/tenants/{bTenant}/rtsp-credentials/{rtspCred}"), accepts: apiCreds},
	{pattern: "GET /api/devices/{deviceId}/handles", paths: paths("/api/devices/{device}/handles"), accepts: apiCreds},
	{pattern: "DELETE /api/handles/{handle}", paths: paths("/api/handles/{handle}"), accepts: apiCreds},
	{pattern: "POST /api/handles/{handle}/rotate", paths: paths("/api/handles/{handle}/rotate"), accepts: apiCreds},
	{pattern: "DELETE /api/users/{userId}", paths: paths("/api/users/{user}", "/api/users/{bUser}"), accepts: apiCreds},
	{pattern: "POST /api/admin/users/{userId}/superadmin", paths: paths("/api/admin/users/{user}/superadmin", "/api/admin/users/{bUser}/superadmin"), body: `{"superadmin":true}`, accepts: apiCreds},
	{pattern: "GET /api/admin/tenants", paths: paths("/api/admin/tenants"), accepts: apiCreds, own: 403},
	{pattern: "GET /login", skip: noTenancy},
	{pattern: "POST /login", skip: "signs in by email and password; signin_test.go"},
	{pattern: "POST /logout", skip: "ends the caller's own session only"},
	{pattern: "POST /switch-tenant", paths: paths("/switch-tenant"), body: "tenant_id={tenant}", form: true, accepts: []isoCred{credCookie}},
	{pattern: "GET /c-auth", paths: paths("/c-auth?handle={handle}&next=/"), accepts: []isoCred{credCookie}, own: 303},
	{pattern: "/c/{handle}", paths: paths("/c/{handle}"), accepts: webCreds, admin: passThrough, own: 503},
	{pattern: "/c/{handle}/{rest...}", paths: paths("/c/{handle}/", "/c/{handle}/index.html"), body: `x=1`, accepts: webCreds, admin: passThrough, own: 503},
	{pattern: "/", skip: "the catch-all: a page that names no object, or a 404"},
	// The console's pages (relay/console): a session cookie and, on a
	// form, its antiforgery token; every other credential is sent to sign in.
	{pattern: "GET /console/static/{file}", skip: "the console's stylesheet and script, the same for everyone"},
	{pattern: "GET /sites", paths: paths("/sites", "/sites?after={site}"), accepts: []isoCred{credCookie}, check: showsNothingOfA},
	{pattern: "POST /sites", paths: paths("/sites"), body: "name=by+B", form: true, accepts: []isoCred{credCookie}, check: showsNothingOfA},
	{pattern: "GET /sites/{siteId}", paths: paths("/sites/{site}"), accepts: []isoCred{credCookie}},
	{pattern: "POST /sites/{siteId}/enrollment", paths: paths("/sites/{site}/enrollment"), body: "go=1", form: true, accepts: []isoCred{credCookie}},
	{pattern: "POST /sites/{siteId}/installers/{os}", paths: paths("/sites/{site}/installers/linux", "/sites/{site}/installers/windows"), body: "go=1", form: true, accepts: []isoCred{credCookie}},
	{pattern: "POST /sites/{siteId}/devices", paths: paths("/sites/{site}/devices"), body: "host=10.9.9.9&ports=80", form: true, accepts: []isoCred{credCookie}},
	{pattern: "POST /devices/{deviceId}/ports", paths: paths("/devices/{device}/ports"), body: "ports=1", form: true, accepts: []isoCred{credCookie}},
	{pattern: "POST /devices/{deviceId}/delete", paths: paths("/devices/{device}/delete"), body: "confirm=1", form: true, accepts: []isoCred{credCookie}},
	{pattern: "POST /devices/{deviceId}/open/{port}", paths: paths("/devices/{device}/open/{port}"), body: "go=1", form: true, accepts: []isoCred{credCookie}},
	{pattern: "GET /sites/{siteId}/discover", paths: paths("/sites/{site}/discover", "/sites/{site}/discover?run=run_x"), accepts: []isoCred{credCookie}},
	{pattern: "POST /sites/{siteId}/discover", paths: paths("/sites/{site}/discover"), body: "go=1", form: true, accepts: []isoCred{credCookie}},
	{pattern: "POST /sites/{siteId}/probe", paths: paths("/sites/{site}/probe"), body: "range=10.9.9.0/30", form: true, accepts: []isoCred{credCookie}},
	{pattern: "POST /sites/{siteId}/runs/{runId}/add", paths: paths("/sites/{site}/runs/run_x/add"), body: "host=10.9.9.1", form: true, accepts: []isoCred{credCookie}},
	{pattern: "POST /devices/{deviceId}/rtsp/{port}", paths: paths("/devices/{device}/rtsp/{port}"), body: "go=1", form: true, accepts: []isoCred{credCookie}},
	{pattern: "POST /handles/{handle}/revoke", paths: paths("/handles/{handle}/revoke"), body: "site_id={site}&device_id={device}", form: true, accepts: []isoCred{credCookie}},
	{pattern: "POST /handles/{handle}/rotate", paths: paths("/handles/{handle}/rotate"), body: "site_id={site}&device_id={device}", form: true, accepts: []isoCred{credCookie}},
	{pattern: "GET /cli-sessions", paths: paths("/cli-sessions", "/cli-sessions?site={site}"), accepts: []isoCred{credCookie}, check: showsNothingOfA},
	{pattern: "POST /cli-sessions", paths: paths("/cli-sessions"), body: "site_id={site}", form: true, accepts: []isoCred{credCookie}},
	{pattern: "POST /cli-sessions/{sessionId}/revoke", paths: paths("/cli-sessions/{cli}/revoke"), body: "site_id={site}", form: true, accepts: []isoCred{credCookie}},
	{pattern: "GET /rtsp-credentials", paths: paths("/rtsp-credentials"), accepts: []isoCred{credCookie}, check: showsNothingOfA},
	{pattern: "POST /rtsp-credentials", paths: paths("/rtsp-credentials"), body: "name=by+B&site_id={site}", form: true, accepts: []isoCred{credCookie}},
	{pattern: "POST /rtsp-credentials/{credId}/revoke", paths: paths("/rtsp-credentials/{rtspCred}/revoke"), body: "go=1", form: true, accepts: []isoCred{credCookie}},
	{pattern: "GET /download", skip: "the relay's downloads, the same for every tenant"},
	{pattern: "GET /account/tokens", paths: paths("/account/tokens"), accepts: []isoCred{credCookie}, check: showsNothingOfA},
	{pattern: "POST /account/tokens", paths: paths("/account/tokens"), body: "label=by+B", form: true, accepts: []isoCred{credCookie}, check: showsNothingOfA},
	{pattern: "POST /account/tokens/{tokenId}/revoke", paths: paths("/account/tokens/{token}/revoke"), body: "go=1", form: true, accepts: []isoCred{credCookie}},
	{pattern: "GET /agents", paths: paths("/agents"), accepts: []isoCred{credCookie}, check: showsNothingOfA},
	{pattern: "POST /agents/{agentId}/revoke", paths: paths("/agents/{agent}/revoke"), body: "go=1", form: true, accepts: []isoCred{credCookie}},
	{pattern: "GET /audit", paths: paths("/audit", "/audit?action=agent.enroll"), accepts: []isoCred{credCookie}, check: showsNothingOfA},
	{pattern: "POST /api/cli/sessions", paths: paths("/api/cli/sessions"), body: `{"site_ids":["{site}"]}`, accepts: webCreds},
	{pattern: "GET /api/sites/{siteId}/cli-sessions", paths: paths("/api/sites/{site}/cli-sessions"), accepts: webCreds},
	{pattern: "DELETE /api/cli/sessions/{id}", paths: paths("/api/cli/sessions/{cli}"), accepts: webCreds},
	{pattern: "GET /api/cli/sessions/plan", paths: paths("/api/cli/sessions/plan"), accepts: []isoCred{credOps}, check: planWithoutA},
	{pattern: "GET /api/cli/raw-tunnel/{ip}/{port}", paths: paths("/api/cli/raw-tunnel/{ip}/{port}"), ws: true, accepts: []isoCred{credOps}},
	{pattern: "GET /api/cli/mux", skip: "the ids travel in its streams' headers, checked per stream (TestCLIMuxStatuses, on this route and on the raw ALPN transport of cli_raw.go, which is no route and serves the same streams)"},
}

// TestTenantIsolation runs every route of the relay with tenant A's ids
// and each of tenant B's credentials, for every method the route
// serves: the answer is 403 or 404 (never a 2xx, 3xx into A's data, or
// 5xx), and tenant A's objects in the store are as they were.
func TestTenantIsolation(t *testing.T) {
	d := startDemo(t, func(c *relay.Config) { c.AppsDomain = "apps.invalid"; c.RTSPSAddr = "127.0.0.1:0" })
	f := newIsoFixture(t, d)

	registered := relay.RoutePatterns(d.Relay)
	listed := map[string]bool{}
	for _, r := range isolationRoutes {
		if listed[r.pattern] {
			t.Errorf("route %q is in the table twice", r.pattern)
		}
		listed[r.pattern] = true
		if !slices.Contains(registered, r.pattern) {
			t.Errorf("route %q is in the table but not registered: remove or fix its row", r.pattern)
		}
	}
	for _, p := range registered {
		if !listed[p] {
			t.Errorf("route %q is registered but not in isolationRoutes: add a row (its path with tenant A's ids, its body, its credentials)", p)
		}
	}

	before := f.snapshot(t)
	for _, r := range isolationRoutes {
		if r.skip != "" {
			continue
		}
		method, _, ok := strings.Cut(r.pattern, " ")
		methods := []string{method}
		if !ok {
			methods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}
		} else if method == "GET" {
			methods = append(methods, "HEAD") // a GET pattern serves HEAD too
		}
		for _, m := range methods {
			for _, p := range r.paths(f) {
				for _, c := range allCreds {
					status, body := f.do(t, c, m, p, f.expand(r.body), r.form, r.ws)
					what := fmt.Sprintf("%s %s by B's %s", m, p, c)
					accepted := slices.Contains(r.accepts, c)
					// The router's own redirect of /c/{handle} to
					// /c/{handle}/, and the sign-in page, show nothing.
					harmless := status/100 == 3 && (strings.HasPrefix(body, "/login") || body == p+"/")
					switch {
					case r.check != nil && accepted && m == "HEAD":
						if status != 200 || body != "" {
							t.Errorf("%s: %d %s", what, status, oneLine(body))
						}
					case r.check != nil && accepted:
						r.check(t, f, status, body)
					case status < 200 || status/100 == 2 || status >= 500:
						t.Errorf("%s: %d %s", what, status, oneLine(body))
					case harmless:
					case accepted && status != 403 && status != 404:
						t.Errorf("%s: %d %s; want 403 or 404", what, status, oneLine(body))
					case status/100 == 3:
						t.Errorf("%s: redirect to %s; want a refusal or the sign-in page", what, body)
					}
				}
			}
		}
		if after := f.snapshot(t); after != before {
			t.Fatalf("after %s, tenant A's state changed:\nbefore %s\nafter  %s", r.pattern, before, after)
		}
	}
	f.moreColumns(t, before) // isolation_columns_test.go
	f.rtspIsolation(t)       // isolation_rtsp_test.go
}

// newIsoFixture mints tenant A's remaining ids and makes tenant B: a
// user with a password, an nt_ token, a signed-in browser with its
// antiforgery token, a site with a device, and an ops_ CLI session.
func newIsoFixture(t *testing.T, d *demo.Demo) *isoFixture {
	ctx, admin := context.Background(), demo.Admin(d.Info.AdminKey)
	f := &isoFixture{d: d, tenant: d.Info.TenantID, user: d.Info.UserID, site: d.Info.SiteID, device: d.Info.DeviceID, agent: d.Info.AgentID, handle: d.Info.HTTPHandle}
	var tok struct{ ID string }
	must(t, d.API.Do(ctx, "POST", "/api/users/"+f.user+"/tokens", nil, &tok, admin))
	f.token = tok.ID
	aCLI := mintCLI(t, d)
	f.cli, f.cliHash = aCLI.ID, hex.EncodeToString(secret.Hash(aCLI.Token))
	f.license = issueLicense(t, d, f.tenant).ID
	f.partnerKey = issuePartnerKey(t, d, f.tenant, "").ID
	var rc struct{ ID string }
	must(t, d.API.Do(ctx, "POST", "/api/tenants/"+f.tenant+"/rtsp-credentials", map[string]string{"name": "A's VMS"}, &rc, admin))
	f.rtspCred = rc.ID
	var dev struct {
		LoopbackIP string `json:"loopback_ip"`
		Ports      []int  `json:"ports"`
	}
	must(t, d.API.Do(ctx, "GET", "/api/devices/"+f.device, nil, &dev, admin))
	f.loopback, f.port = dev.LoopbackIP, dev.Ports[0]

	var ten struct {
		ID      string        `json:"id"`
		License issuedLicense `json:"license"`
	}
	var usr, btok, site struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	must(t, d.API.Do(ctx, "POST", "/api/admin/tenants", map[string]string{"name": "Tenant B"}, &ten, admin))
	f.bTenant, f.bEmail, f.bPassword = ten.ID, "b@b.invalid", "tenant-b-password-1"
	f.bLicense, f.bLicenseID = ten.License.GUID, ten.License.ID
	bKey := issuePartnerKey(t, d, ten.ID, "127.0.0.1/32")
	f.bNK, f.bNKID = bKey.Key, bKey.ID
	f.bNKFar = issuePartnerKey(t, d, ten.ID, "203.0.113.0/24").Key
	must(t, d.API.Do(ctx, "POST", "/api/tenants/"+ten.ID+"/users", map[string]string{"email": f.bEmail, "password": f.bPassword}, &usr, admin))
	f.bUser = usr.ID
	must(t, d.API.Do(ctx, "POST", "/api/users/"+usr.ID+"/tokens", nil, &btok, admin))
	f.bToken, f.bTokenID = btok.Token, btok.ID
	must(t, d.API.Do(ctx, "POST", "/api/tenants/"+ten.ID+"/sites", map[string]any{"name": "B site", "allow_loopback": true}, &site, demo.Bearer(f.bToken)))
	f.bSite = site.ID
	var bDev struct {
		ID      string            `json:"id"`
		Handles map[string]string `json:"handles"`
	}
	must(t, d.API.Do(ctx, "POST", "/api/sites/"+site.ID+"/devices", map[string]any{"host": "127.0.0.1", "ports": []int{f.port}}, &bDev, demo.Bearer(f.bToken)))
	f.bHandle, f.bDevice = bDev.Handles[strconv.Itoa(f.port)], bDev.ID
	var ops struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	must(t, d.API.Do(ctx, "POST", "/api/cli/sessions", map[string]any{"site_ids": []string{site.ID}}, &ops, demo.Bearer(f.bToken)))
	f.bOps, f.bCLI, f.bCLIHash = ops.Token, ops.ID, hex.EncodeToString(secret.Hash(ops.Token))
	var gone struct{ ID, Token string }
	must(t, d.API.Do(ctx, "POST", "/api/users/"+usr.ID+"/tokens", nil, &gone, admin))
	must(t, d.API.Do(ctx, "DELETE", "/api/users/"+usr.ID+"/tokens/"+gone.ID, nil, nil, admin))
	f.bRevoked = gone.Token

	f.bBrowser = browser(t, d)
	if resp := signIn(t, d, f.bBrowser, f.bEmail, f.bPassword); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("B's sign-in: %d", resp.StatusCode)
	}
	_, home := get(t, f.bBrowser, d.Info.RelayURL+"/sites")
	m := csrfRe.FindStringSubmatch(home)
	if m == nil || !strings.Contains(home, f.bEmail) {
		t.Fatalf("B's home page has no csrf field or does not name B:\n%s", home)
	}
	f.bCSRF = m[1]

	// B's credentials work on B's own objects: the refusals below are
	// about tenancy, not bad credentials.
	for _, c := range []isoCred{credToken, credBasic} {
		if status, body := f.do(t, c, "GET", "/api/sites/"+f.bSite, "", false, false); status != 200 {
			t.Fatalf("B's %s on B's site: %d %s", c, status, body)
		}
	}
	if status, body := f.do(t, credCookie, "GET", "/api/sites/"+f.bSite+"/cli-sessions", "", false, false); status != 200 {
		t.Fatalf("B's session cookie on B's CLI sessions: %d %s", status, body)
	}
	if status, body := f.do(t, credOps, "GET", "/api/cli/sessions/plan", "", false, false); status != 200 || !strings.Contains(body, f.bSite) {
		t.Fatalf("B's ops_ session's plan: %d %s", status, body)
	}
	// B's tunnel credentials pass authentication on B's own handle (a
	// plain GET then asks for the upgrade), and B's partner key lists
	// B's sessions; B's far key is refused for its address alone.
	for _, c := range []isoCred{credOps, credLic, credLicSub} {
		if status, body := f.do(t, c, "GET", "/api/tunnel/"+f.bHandle, "", false, false); status != http.StatusUpgradeRequired {
			t.Fatalf("B's %s on B's handle: %d %s", c, status, body)
		}
	}
	if status, body := f.do(t, credNK, "GET", "/api/v1/sessions", "", false, false); status != 200 || !strings.Contains(body, f.bSite) {
		t.Fatalf("B's partner key's sessions: %d %s", status, body)
	}
	if status, body := f.do(t, credNKFar, "GET", "/api/v1/sessions", "", false, false); status != 403 || !strings.Contains(body, "203.0.113.0/24") {
		t.Fatalf("B's far partner key: %d %s", status, body)
	}
	return f
}

// do sends one request as B with credential c. A redirect's answer is
// its Location.
func (f *isoFixture) do(t *testing.T, c isoCred, method, path, body string, form, ws bool) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" && method != "GET" && method != "HEAD" {
		if form && c == credCookie {
			body += "&csrf=" + url.QueryEscape(f.bCSRF)
		}
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.d.Info.RelayURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if form {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if ws {
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	}
	client := f.d.API.Client
	switch c {
	case credNone:
	case credGarbage:
		f.garbage(req)
	case credAdmin:
		req.Header.Set("X-Admin-Api-Key", f.d.Info.AdminKey)
	case credRevoked:
		req.Header.Set("Authorization", "Bearer "+f.bRevoked)
	case credToken:
		req.Header.Set("Authorization", "Bearer "+f.bToken)
	case credBasic:
		req.SetBasicAuth(f.bEmail, f.bPassword)
	case credOps:
		req.Header.Set("Authorization", "Bearer "+f.bOps)
	case credLic:
		req.Header.Set("X-License", f.bLicense)
		req.Header.Set("X-User-Id", "b-operator")
	case credLicSub:
		req.Header.Set("Sec-WebSocket-Protocol", "license."+f.bLicense+".user.b-operator")
	case credNK:
		req.Header.Set("X-API-Key", f.bNK)
	case credNKFar:
		req.Header.Set("X-API-Key", f.bNKFar)
	case credCookie:
		// As the console's own scripts send it: same origin, with the
		// session's antiforgery token.
		client = f.bBrowser
		req.Header.Set("X-CSRF-Token", f.bCSRF)
		req.Header.Set("Origin", f.d.Info.RelayURL)
	}
	noRedirect := *client
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 == 3 {
		return resp.StatusCode, resp.Header.Get("Location")
	}
	return resp.StatusCode, string(b)
}

// snapshot is tenant A's objects as the store holds them, and the number
// of audit records that are not B's own: what no request of B may change.
func (f *isoFixture) snapshot(t *testing.T) string {
	t.Helper()
	ctx, st := context.Background(), f.d.Relay.Store()
	var b strings.Builder
	ten, err := st.GetTenant(ctx, f.tenant)
	must(t, err)
	u, err := st.GetUser(ctx, f.user)
	must(t, err)
	tok, err := st.GetAPIToken(ctx, f.token)
	must(t, err)
	site, err := st.GetSite(ctx, f.site)
	must(t, err)
	fmt.Fprintf(&b, "tenant %s %q; user %s %s %s %v; token %s revoked %v; site %s %q v%d loopback %v",
		ten.ID, ten.Name, u.ID, u.TenantID, u.Email, u.Superadmin, tok.ID, tok.RevokedAt != nil, site.ID, site.Name, site.AllowlistVersion, site.AllowLoopback)
	devs, err := st.ListDevices(ctx, f.site)
	must(t, err)
	for _, d := range devs {
		fmt.Fprintf(&b, "; device %s %s %v %q %s", d.ID, d.Host, d.Ports, d.Label, d.LoopbackIP)
		hs, err := st.ListHandles(ctx, d.ID)
		must(t, err)
		for _, h := range hs {
			fmt.Fprintf(&b, " handle %s:%d", h.Handle, h.Port)
		}
		creds, _ := st.GetDeviceCredentials(ctx, d.ID)
		fmt.Fprintf(&b, " login %d bytes", len(creds))
	}
	rcs, err := st.ListRTSPCredentials(ctx, f.tenant)
	must(t, err)
	for _, c := range rcs {
		fmt.Fprintf(&b, "; rtsp credential %s %q", c.ID, c.Name)
	}
	agents, err := st.ListAgents(ctx, f.site)
	must(t, err)
	for _, a := range agents {
		fmt.Fprintf(&b, "; agent %s revoked %v", a.ID, a.RevokedAt != nil)
	}
	cs, err := st.GetCLISession(ctx, f.cli)
	must(t, err)
	fmt.Fprintf(&b, "; cli %s revoked %v", cs.ID, cs.RevokedAt != nil)
	lics, err := st.ListLicenses(ctx, f.tenant)
	must(t, err)
	for _, l := range lics {
		fmt.Fprintf(&b, "; license %s revoked %v", l.ID, l.RevokedAt != nil)
	}
	keys, err := st.ListPartnerKeys(ctx, f.tenant)
	must(t, err)
	for _, k := range keys {
		fmt.Fprintf(&b, "; partner key %s revoked %v", k.ID, k.RevokedAt != nil)
	}
	live, err := st.ListTenantCLISessions(ctx, f.tenant, time.Now())
	must(t, err)
	fmt.Fprintf(&b, "; %d live CLI sessions", len(live))
	// A's audit records, and the records of no tenant (the admin's).
	aAudit, err := st.ListAudit(ctx, store.AuditFilter{TenantID: f.tenant, Limit: 100000})
	must(t, err)
	all, err := st.ListAudit(ctx, store.AuditFilter{Limit: 100000})
	must(t, err)
	var bAudit int
	for _, e := range all {
		if e.TenantID == f.bTenant {
			bAudit++
		}
	}
	fmt.Fprintf(&b, "; %d audit records of A, %d of neither", len(aAudit), len(all)-len(aAudit)-bAudit)
	if !f.d.Agent.Connected() {
		b.WriteString("; agent disconnected")
	}
	return b.String()
}

// onlyOwnAudit: B's audit list, even asked for A's tenant, holds only
// B's records.
func onlyOwnAudit(t *testing.T, f *isoFixture, status int, body string) {
	t.Helper()
	var events []struct {
		TenantID string `json:"tenant_id"`
	}
	if status != 200 || json.Unmarshal([]byte(body), &events) != nil || len(events) == 0 {
		t.Errorf("B's audit list: %d %s", status, oneLine(body))
		return
	}
	for _, e := range events {
		if e.TenantID != f.bTenant {
			t.Errorf("B's audit list holds a record of tenant %q", e.TenantID)
		}
	}
}

// showsNothingOfA: a console page B may see (its own sites, a site it
// just created) names none of A's objects.
func showsNothingOfA(t *testing.T, f *isoFixture, status int, body string) {
	t.Helper()
	if status != 200 || !strings.Contains(body, f.bEmail) {
		t.Errorf("B's console page: %d %s", status, oneLine(body))
	}
	for _, id := range []string{f.tenant, f.site, f.device, f.handle, f.agent, "Demo tenant"} {
		if strings.Contains(body, id) {
			t.Errorf("B's console page names A's %q: %s", id, oneLine(body))
		}
	}
}

// sessionsWithoutA: B's partner key lists B's CLI sessions only.
func sessionsWithoutA(t *testing.T, f *isoFixture, status int, body string) {
	t.Helper()
	if status != 200 || !strings.Contains(body, f.bSite) || strings.Contains(body, f.site) || strings.Contains(body, f.cli) || strings.Contains(body, f.cliHash) {
		t.Errorf("B's partner sessions: %d %s", status, oneLine(body))
	}
}

// planWithoutA: B's CLI plan lists B's devices only.
func planWithoutA(t *testing.T, f *isoFixture, status int, body string) {
	t.Helper()
	if status != 200 || !strings.Contains(body, f.bSite) || strings.Contains(body, f.site) || strings.Contains(body, f.handle) || strings.Contains(body, f.device) {
		t.Errorf("B's CLI plan: %d %s", status, oneLine(body))
	}
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
