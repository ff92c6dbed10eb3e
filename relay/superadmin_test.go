package relay_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
)

// newUser creates a user of tenant with the admin key and returns its id
// and email; the password is userPassword.
func newUser(t *testing.T, d *demo.Demo, tenant string) (id, email string) {
	t.Helper()
	email = "u" + strconv.FormatInt(time.Now().UnixNano(), 36) + "@t.invalid"
	var u struct {
		ID string `json:"id"`
	}
	must(t, d.API.Do(context.Background(), "POST", "/api/tenants/"+tenant+"/users", map[string]any{"email": email, "password": userPassword}, &u, demo.Admin(d.Info.AdminKey)))
	return u.ID, email
}

const userPassword = "a-long-enough-password"

func basicCred(email string) demo.Cred {
	return func(r *http.Request) { r.SetBasicAuth(email, userPassword) }
}

// wantStatus checks that err is a relay answer with status code.
func wantAPIStatus(t *testing.T, what string, err error, code int) {
	t.Helper()
	var re *cli.RelayError
	if !errors.As(err, &re) || re.Status != code {
		t.Fatalf("%s: %v, want %d", what, err, code)
	}
	if re.Reason == "" {
		t.Fatalf("%s: %d without a reason", what, code)
	}
}

type auditRow struct {
	TenantID string `json:"tenant_id"`
	Actor    string `json:"actor"`
	Action   string `json:"action"`
	Target   string `json:"target"`
	Detail   string `json:"detail"`
}

// auditRows lists the tenant's audit rows of one action.
func auditRows(t *testing.T, d *demo.Demo, tenant, action string) []auditRow {
	t.Helper()
	var rows []auditRow
	must(t, d.API.Do(context.Background(), "GET", "/api/audit?tenant_id="+tenant+"&action="+action, nil, &rows, demo.Admin(d.Info.AdminKey)))
	return rows
}

// Only the admin key makes a superadmin; a superadmin lists every tenant
// and switches between them, and every cross-tenant action is audited
// with both tenants: filed under the tenant acted in, by an actor that
// names the home tenant (and a switch is filed under both).
func TestSuperadmin(t *testing.T) {
	d := startDemo(t)
	ctx := context.Background()
	admin := demo.Admin(d.Info.AdminKey)
	var b struct {
		ID string `json:"id"`
	}
	must(t, d.API.Do(ctx, "POST", "/api/admin/tenants", map[string]any{"name": "Tenant B"}, &b, admin))
	sID, sEmail := newUser(t, d, d.Info.TenantID)
	path := "/api/admin/users/" + sID + "/superadmin"

	wantAPIStatus(t, "superadmin set by a user's token", d.API.Do(ctx, "POST", path, map[string]any{"superadmin": true}, nil, demo.Bearer(d.Info.Token)), 403)
	wantAPIStatus(t, "superadmin set by the user themself", d.API.Do(ctx, "POST", path, map[string]any{"superadmin": true}, nil, basicCred(sEmail)), 403)
	wantAPIStatus(t, "tenants listed by a user", d.API.Do(ctx, "GET", "/api/admin/tenants", nil, nil, basicCred(sEmail)), 403)
	wantAPIStatus(t, "superadmin without a value", d.API.Do(ctx, "POST", path, map[string]any{}, nil, admin), 400)
	wantAPIStatus(t, "superadmin of an unknown user", d.API.Do(ctx, "POST", "/api/admin/users/usr_nope/superadmin", map[string]any{"superadmin": true}, nil, admin), 404)
	var set struct {
		Superadmin bool `json:"superadmin"`
	}
	must(t, d.API.Do(ctx, "POST", path, map[string]any{"superadmin": true}, &set, admin))
	if !set.Superadmin {
		t.Fatal("superadmin: answered false")
	}
	waitAuditDetail(t, d, "user.superadmin", sID, "superadmin: true")

	var ts struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	must(t, d.API.Do(ctx, "GET", "/api/admin/tenants", nil, &ts, basicCred(sEmail)))
	seen := map[string]bool{}
	for _, x := range ts.Items {
		seen[x.ID] = true
	}
	if !seen[d.Info.TenantID] || !seen[b.ID] {
		t.Fatalf("superadmin's tenant list %v lacks %s or %s", ts.Items, d.Info.TenantID, b.ID)
	}
	wantAPIStatus(t, "tenants listed by another user's token", d.API.Do(ctx, "GET", "/api/admin/tenants", nil, nil, demo.Bearer(d.Info.Token)), 403)

	// A cross-tenant action: a site of B made by A's superadmin.
	must(t, d.API.Do(ctx, "POST", "/api/tenants/"+b.ID+"/sites", map[string]any{"name": "made by a superadmin"}, nil, basicCred(sEmail)))
	wantActor := "user:" + sID + "@" + d.Info.TenantID
	if rows := auditRows(t, d, b.ID, "site.create"); len(rows) != 1 || rows[0].Actor != wantActor {
		t.Fatalf("B's site.create rows %+v, want one by %s", rows, wantActor)
	}

	// The console's tenant picker: the switch is filed under both.
	c := browser(t, d)
	signIn(t, d, c, sEmail, userPassword)
	resp, page := get(t, c, d.Info.RelayURL+"/sites")
	m := csrfRe.FindStringSubmatch(page)
	if resp.StatusCode != 200 || m == nil {
		t.Fatalf("home page: %d", resp.StatusCode)
	}
	resp, err := c.PostForm(d.Info.RelayURL+"/switch-tenant", url.Values{"csrf": {m[1]}, "tenant_id": {b.ID}})
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("switch-tenant: %d", resp.StatusCode)
	}
	for _, tenant := range []string{b.ID, d.Info.TenantID} {
		rows := auditRows(t, d, tenant, "user.switch_tenant")
		if len(rows) != 1 || rows[0].Actor != wantActor || rows[0].Target != b.ID {
			t.Fatalf("tenant %s's switch rows %+v, want one by %s into %s", tenant, rows, wantActor, b.ID)
		}
	}

	// Unset, the flag lists nothing again.
	must(t, d.API.Do(ctx, "POST", path, map[string]any{"superadmin": false}, nil, admin))
	wantAPIStatus(t, "tenants listed by a former superadmin", d.API.Do(ctx, "GET", "/api/admin/tenants", nil, nil, basicCred(sEmail)), 403)
}

// A disabled user's every credential is refused (password, token, CLI
// session, browser session), and their email cannot sign in; only the
// admin key disables.
func TestUserDisableRefusesEveryCredential(t *testing.T) {
	d := startDemo(t)
	ctx := context.Background()
	admin := demo.Admin(d.Info.AdminKey)
	id, email := newUser(t, d, d.Info.TenantID)
	var tok struct {
		Token string `json:"token"`
	}
	must(t, d.API.Do(ctx, "POST", "/api/users/"+id+"/tokens", nil, &tok, admin))
	var cs cliSession
	must(t, d.API.Do(ctx, "POST", "/api/cli/sessions", map[string]any{"site_ids": []string{d.Info.SiteID}, "label": "x"}, &cs, demo.Bearer(tok.Token)))
	c := browser(t, d)
	signIn(t, d, c, email, userPassword)

	wantAPIStatus(t, "disable by a user's token", d.API.Do(ctx, "DELETE", "/api/users/"+id, nil, nil, demo.Bearer(d.Info.Token)), 403)
	wantAPIStatus(t, "disable by the user themself", d.API.Do(ctx, "DELETE", "/api/users/"+id, nil, nil, basicCred(email)), 403)
	wantAPIStatus(t, "disable of an unknown user", d.API.Do(ctx, "DELETE", "/api/users/usr_nope", nil, nil, admin), 404)
	must(t, d.API.Do(ctx, "DELETE", "/api/users/"+id, nil, nil, admin))
	waitAuditDetail(t, d, "user.disable", id, "tunnels closed: 0")

	wantAPIStatus(t, "a disabled user's password", d.API.Do(ctx, "GET", "/api/audit", nil, nil, basicCred(email)), 401)
	wantAPIStatus(t, "a disabled user's token", d.API.Do(ctx, "GET", "/api/audit", nil, nil, demo.Bearer(tok.Token)), 401)
	_, err := cli.DialTunnel(ctx, cliRelay(d, cs.Token), d.Info.EchoHandle)
	if err == nil {
		t.Fatal("a disabled user's CLI session opened a tunnel")
	}
	resp, _ := get(t, c, d.Info.RelayURL+"/sites")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("a disabled user's browser session: %d, want a redirect to sign in", resp.StatusCode)
	}
	resp = signIn(t, d, browser(t, d), email, userPassword)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a disabled user's sign-in: %d (Location %q), want 401", resp.StatusCode, resp.Header.Get("Location"))
	}
}
