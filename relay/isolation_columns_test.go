package relay_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/nanodems/connector/relay/store"
)

// The columns of the isolation matrix beyond B's credentials on A's
// objects (TestTenantIsolation's main loop):
//
//   - no credential, garbage, and B's revoked nt_ token, on every route,
//     path and method: 401, or the sign-in page for a browser's route;
//   - the admin key on A's objects, by GET and HEAD: 2xx where the route
//     takes the API's credentials (or the row's admin status), refused
//     elsewhere;
//   - B's own credentials on B's own objects, by GET and HEAD: the
//     credentials the route accepts get 2xx (or the row's own status),
//     the others are refused as on A's objects. This is the matrix's
//     "own" column: it shows the refusals are about tenancy, not broken
//     credentials.
//
// Writes by the admin key and by B on B's objects are the routes' own
// tests (they change what they write); a refused write changes nothing,
// which the snapshot after these columns checks.
const (
	credNone    isoCred = "no credential"
	credGarbage isoCred = "garbage credentials"
	credAdmin   isoCred = "admin key"
	credRevoked isoCred = "revoked nt_ token"
)

// garbage puts junk in every place a credential travels: Bearer, Basic,
// the admin key, X-License, X-API-Key, the license subprotocol and the
// session cookie.
func (f *isoFixture) garbage(req *http.Request) {
	req.Header.Set("Authorization", "Bearer nt_garbage")
	req.Header.Set("X-Admin-Api-Key", "garbage")
	req.Header.Set("X-License", "00000000-0000-0000-0000-000000000000")
	req.Header.Set("X-API-Key", "nk_garbage")
	req.Header.Set("Sec-WebSocket-Protocol", "license.00000000-0000-0000-0000-000000000000.user.x")
	req.AddCookie(&http.Cookie{Name: "nd_session", Value: "garbage"})
}

// expandB fills a row's path with B's own ids; ok is false when it names
// an object B does not have (an agent).
func (f *isoFixture) expandB(p string) (string, bool) {
	if strings.Contains(p, "{agent}") || strings.Contains(p, "{rtspCred}") || strings.Contains(p, "{partnerKey}") {
		return "", false
	}
	return strings.NewReplacer(
		"{tenant}", f.bTenant, "{user}", f.bUser, "{token}", f.bTokenID, "{site}", f.bSite, "{device}", f.bDevice,
		"{handle}", f.bHandle, "{cli}", f.bCLI, "{cliHash}", f.bCLIHash, "{license}", f.bLicenseID,
		"{ip}", f.loopback, "{port}", fmt.Sprint(f.port), "/0/", "/"+fmt.Sprint(f.port)+"/", "{bUser}", f.bUser, "{bSite}", f.bSite, "{bTenant}", f.bTenant,
	).Replace(p), true
}

// refusedUnauthenticated: 401, the sign-in page, or the router's
// redirect of /c/{handle} to /c/{handle}/.
func refusedUnauthenticated(status int, body, path string) bool {
	return status == 401 || status/100 == 3 && (strings.HasPrefix(body, "/login") || body == path+"/")
}

// refused: anything but a 2xx, a 5xx or a redirect into the data.
func refused(status int, body, path string) bool {
	return status >= 400 && status < 500 || refusedUnauthenticated(status, body, path)
}

// passThrough, as a row's admin or own status, says the request reaches
// the device, which answers in its own way (a camera's redirect to its
// login page, its own 404): anything but a refusal or the relay's error
// page.
const passThrough = -1

// routeMethods are the methods a row is requested with.
func (r isoRoute) methods() []string {
	method, _, ok := strings.Cut(r.pattern, " ")
	switch {
	case !ok:
		return []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}
	case method == "GET":
		return []string{"GET", "HEAD"}
	}
	return []string{method}
}

// answered checks an accepted credential's answer against want (0:
// any 2xx). A path naming run_x, a run that exists in no tenant, is 404
// for everyone allowed to look.
func answered(want, status int, body, path string) bool {
	switch {
	case status/100 == 3 && body == path+"/":
		return true // the router's redirect of /c/{handle} to /c/{handle}/
	case strings.Contains(path, "run_x"):
		return status == 404
	case want == passThrough:
		return status != 401 && status != 403 && status < 500 && !strings.Contains(body, "nanodems")
	case want == 0:
		return status/100 == 2
	}
	return status == want
}

// moreColumns runs the columns of the file's comment; before is tenant
// A's snapshot, which only the admin key's audited reads may change.
func (f *isoFixture) moreColumns(t *testing.T, before string) {
	for _, r := range isolationRoutes {
		if r.skip != "" {
			continue
		}
		for _, m := range r.methods() {
			for i, p := range r.paths(f) {
				for _, c := range []isoCred{credNone, credGarbage, credRevoked} {
					status, body := f.do(t, c, m, p, f.expand(r.body), r.form, r.ws)
					if !refusedUnauthenticated(status, body, p) {
						t.Errorf("%s %s with %s: %d %s; want 401 or the sign-in page", m, p, c, status, oneLine(body))
					}
				}
				if (m != "GET" && m != "HEAD") || r.check != nil || r.ws {
					continue
				}
				own, ok := f.expandB(r.paths(placeholders)[i])
				if !ok {
					continue
				}
				for _, c := range allCreds {
					status, body := f.do(t, c, m, own, "", r.form, false)
					what := fmt.Sprintf("%s %s (B's own) by B's %s", m, own, c)
					switch {
					case !slices.Contains(r.accepts, c):
						if !refused(status, body, own) {
							t.Errorf("%s: %d %s; want a refusal", what, status, oneLine(body))
						}
					case !answered(r.own, status, body, own):
						t.Errorf("%s: %d %s; want %d (0: 2xx, -1: the device's answer)", what, status, oneLine(body), r.own)
					}
				}
			}
		}
	}
	if after := f.snapshot(t); after != before {
		t.Fatalf("after the columns of none, garbage, revoked nt_ and B's own objects, tenant A's state changed:\nbefore %s\nafter  %s", before, after)
	}

	// The admin key reads A's objects. Without the upgrade: on a
	// WebSocket route it would open A's tunnel.
	seen := len(f.aAudit(t))
	for _, r := range isolationRoutes {
		if r.skip != "" || r.check != nil {
			continue
		}
		for _, m := range r.methods() {
			if m != "GET" && m != "HEAD" {
				continue
			}
			for _, p := range r.paths(f) {
				status, body := f.do(t, credAdmin, m, p, "", r.form, false)
				switch want := r.adminWants(); {
				case want == 0 && !refused(status, body, p):
					t.Errorf("%s %s with the admin key: %d %s; want a refusal", m, p, status, oneLine(body))
				case want != 0 && !answered(r.admin, status, body, p):
					t.Errorf("%s %s with the admin key: %d %s; want %d (0: 2xx, -1: the device's answer)", m, p, status, oneLine(body), r.admin)
				}
			}
		}
	}
	for _, e := range f.aAudit(t)[seen:] {
		if e.Actor != "admin" {
			t.Errorf("the admin key's reads left an audit record of A not by the admin: %+v", e)
		}
	}
}

// aAudit is tenant A's audit, oldest first.
func (f *isoFixture) aAudit(t *testing.T) []store.AuditEvent {
	t.Helper()
	evs, err := f.d.Relay.Store().ListAudit(context.Background(), store.AuditFilter{TenantID: f.tenant, Limit: 100000})
	must(t, err)
	slices.Reverse(evs)
	return evs
}

// placeholders expands a row's paths to their templates ({site}, …),
// which expandB fills with B's ids.
var placeholders = &isoFixture{tenant: "{tenant}", user: "{user}", token: "{token}", site: "{site}", device: "{device}",
	agent: "{agent}", handle: "{handle}", cli: "{cli}", loopback: "{ip}", cliHash: "{cliHash}", license: "{license}",
	partnerKey: "{partnerKey}", rtspCred: "{rtspCred}", bUser: "{bUser}", bSite: "{bSite}", bTenant: "{bTenant}"}

// adminWants is 0 where the admin key is refused (the route does not
// take the API's credentials), else 1.
func (r isoRoute) adminWants() int {
	if slices.Contains(r.accepts, credToken) {
		return 1
	}
	return 0
}
