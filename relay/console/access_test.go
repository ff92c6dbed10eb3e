package console_test

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/relay/console"
)

// Workflow 10: a superadmin switches the session's tenant with the picker
// top right; a normal user sees only their tenant's name.
func TestConsoleTenantPicker(t *testing.T) {
	d := startDemo(t)
	super := newTenant(t, d, "Bosphorus Retail", true)
	b := newBrowser(t, d.Info.RelayURL)
	b.SignIn(super.Email, super.Password)
	var opts []string
	b.Run("picker", chromedp.Evaluate(`Array.from(document.querySelectorAll("#tenant-select option")).map(o => o.textContent)`, &opts))
	if strings.Join(opts, ",") != "Bosphorus Retail,Demo tenant" {
		t.Errorf("tenant picker offers %q", opts)
	}
	if got := b.Text(`#sites`); !strings.Contains(got, "Bosphorus Retail site") || strings.Contains(got, "Demo site") {
		t.Errorf("sites before the switch: %q", got)
	}
	b.Run("switch", SetValues(`#tenant-select`, d.Info.TenantID),
		SubmitPage(`#tenant-picker button`), chromedp.WaitVisible(`#sites`, chromedp.ByQuery))
	var sel string
	b.Run("picked", chromedp.Value(`#tenant-select`, &sel, chromedp.ByQuery))
	if sel != d.Info.TenantID {
		t.Errorf("picker shows %q after the switch, want %s", sel, d.Info.TenantID)
	}
	if got := b.Text(`#sites`); !strings.Contains(got, "Demo site") || strings.Contains(got, "Bosphorus Retail site") {
		t.Errorf("sites after the switch: %q", got)
	}
	b.Shot("tenant-picker")
	// Filed under both tenants: the one entered and the superadmin's own.
	var evs []struct {
		Actor, Target string
		TenantID      string `json:"tenant_id"`
	}
	api(t, d, "GET", "/api/audit?action=user.switch_tenant", nil, &evs)
	tenants := map[string]bool{}
	for _, e := range evs {
		if e.Target == d.Info.TenantID && strings.HasSuffix(e.Actor, "@"+super.ID) {
			tenants[e.TenantID] = true
		}
	}
	if len(evs) != 2 || !tenants[d.Info.TenantID] || !tenants[super.ID] {
		t.Errorf("audit of the switch: %+v", evs)
	}

	// A normal user: the tenant's name, no picker.
	b.Run("sign out", chromedp.Click(`#signout`, chromedp.ByQuery), chromedp.WaitVisible(`#signin`, chromedp.ByQuery))
	b.SignIn(d.Info.UserEmail, d.Info.UserPassword)
	if got := b.Text(`#tenant-name`); got != "Demo tenant" {
		t.Errorf("tenant name %q", got)
	}
	var n int
	b.Run("no picker", chromedp.Evaluate(`document.querySelectorAll("#tenant-select").length`, &n))
	if n != 0 {
		t.Error("a normal user sees the tenant picker")
	}
}

// Workflow 11: the refusals an operator meets, worded as the guide's
// troubleshooting section words them.
func TestConsoleErrors(t *testing.T) {
	d := startDemo(t)
	other := newTenant(t, d, "Other Co", false)
	var otherDev struct {
		Handles map[string]string `json:"handles"`
	}
	api(t, d, "POST", "/api/sites/"+other.SiteID+"/devices", map[string]any{"host": "192.0.2.50", "ports": []int{80}}, &otherDev)
	b := newBrowser(t, d.Info.RelayURL)
	b.SignIn(d.Info.UserEmail, d.Info.UserPassword)

	// A form with a stale antiforgery token: the guide's 400 page.
	b.Expect(400, d.Info.RelayURL+"/sites")
	b.Run("stale form",
		SetValues(`#new-site input[name=csrf]`, "stale-token", `#site-name`, "Never made"),
		chromedp.Click(`#new-site-button`, chromedp.ByQuery),
		SubmitPage(`#create-site`),
		chromedp.WaitVisible(`#error-reason`, chromedp.ByQuery))
	if got := b.Text(`#error-title`); got != "HTTP 400 · Bad Request" {
		t.Errorf("antiforgery title %q", got)
	}
	if got := b.Text(`#error-reason`); got != "Antiforgery token mismatch. Hard-refresh the page (Ctrl+Shift+R) and try again." {
		t.Errorf("antiforgery reason %q", got)
	}
	b.Shot("error-antiforgery")

	// Another tenant's site: 403, not its page.
	b.Expect(403, "/sites/"+other.SiteID)
	b.Run("other tenant's site", chromedp.Navigate(d.Info.RelayURL+"/sites/"+other.SiteID), chromedp.WaitVisible(`#error-reason`, chromedp.ByQuery))
	if got := b.Text(`#error-reason`); got != "forbidden: site does not belong to your tenant" {
		t.Errorf("other tenant's site: %q", got)
	}

	// Another tenant's handle through the browser proxy.
	h := otherDev.Handles["80"]
	b.Expect(403, "/c/"+h+"/")
	b.Run("other tenant's handle", chromedp.Navigate(d.Info.RelayURL+"/c/"+h+"/"), chromedp.WaitVisible(`#message`, chromedp.ByQuery))
	if got := b.Text(`#message`); got != "handle does not belong to your tenant" {
		t.Errorf("other tenant's handle: %q", got)
	}
	b.Shot("error-other-tenant")

	// Without a session: 401 "authentication required", for the API and
	// for a console form.
	c := &client{t: t, base: d.Info.RelayURL, c: signIn(t, d, d.Info.UserEmail, d.Info.UserPassword).c}
	c.c.Jar = nil
	if st, body := c.do("GET", "/api/tunnel/"+h, nil, nil); st != 401 || !strings.Contains(body, `"authentication required"`) {
		t.Errorf("anonymous tunnel: %d %s", st, body)
	}
	if st, body := c.do("POST", "/sites", url.Values{"name": {"x"}}, nil); st != 401 || !strings.Contains(body, "authentication required") {
		t.Errorf("anonymous console form: %d", st)
	}

	// The agent offline: the proxy says "agent reconnecting".
	api(t, d, "POST", "/api/agents/"+d.Info.AgentID+"/revoke", nil, nil)
	b.Expect(503, "/c/"+d.Info.HTTPHandle+"/")
	b.Run("agent offline", chromedp.Navigate(d.Info.RelayURL+"/c/"+d.Info.HTTPHandle+"/"), chromedp.WaitVisible(`#message`, chromedp.ByQuery))
	if got := b.Text(`#message`); !strings.Contains(got, "agent reconnecting") {
		t.Errorf("agent offline: %q", got)
	}
}

// Every console route, called by a signed-in user of tenant B with
// tenant A's ids, answers 403 or 404 and changes nothing.
func TestConsoleTenantIsolation(t *testing.T) {
	d := startDemo(t)
	b := newTenant(t, d, "Tenant B", false)
	cb := signIn(t, d, b.Email, b.Password)
	before := siteDevices(t, d, d.Info.SiteID)
	var dev apiDevice
	api(t, d, "GET", "/api/devices/"+d.Info.DeviceID, nil, &dev)
	port := "80"
	for p := range dev.Handles {
		port = p
	}
	var aTok, aCLI struct {
		ID string `json:"id"`
	}
	api(t, d, "POST", "/api/users/"+d.Info.UserID+"/tokens", nil, &aTok)
	api(t, d, "POST", "/api/cli/sessions", map[string]any{"site_ids": []string{d.Info.SiteID}}, &aCLI)
	ids := strings.NewReplacer("{siteId}", d.Info.SiteID, "{deviceId}", d.Info.DeviceID, "{port}", port, "{file}", "app.css",
		"{agentId}", d.Info.AgentID, "{tokenId}", aTok.ID, "{sessionId}", aCLI.ID, "{handle}", dev.Handles[port])
	tested := 0
	for _, rt := range console.New(nil, nil, console.Options{}).Routes() {
		method, pattern, _ := strings.Cut(rt.Pattern, " ")
		if !strings.Contains(pattern, "Id}") && !strings.Contains(pattern, "{handle}") {
			continue // no id of anyone's: nothing to isolate
		}
		path := ids.Replace(pattern)
		form := url.Values{"name": {"x"}, "host": {"192.0.2.1"}, "ports": {"80"}}
		var st int
		if method == http.MethodPost {
			st, _ = cb.post(path, form)
		} else {
			st, _ = cb.do(method, path, nil, nil)
		}
		if st != http.StatusForbidden && st != http.StatusNotFound {
			t.Errorf("tenant B: %s %s: %d, want 403 or 404", method, path, st)
		}
		tested++
	}
	if tested < 9 {
		t.Fatalf("only %d console routes take ids", tested)
	}
	st := d.Relay.Store()
	if tok, err := st.GetAPIToken(context.Background(), aTok.ID); err != nil || tok.RevokedAt != nil {
		t.Errorf("tenant B revoked A's token: %+v %v", tok, err)
	}
	if cs, err := st.GetCLISession(context.Background(), aCLI.ID); err != nil || cs.RevokedAt != nil {
		t.Errorf("tenant B revoked A's CLI session: %+v %v", cs, err)
	}
	if ag, err := st.GetAgent(context.Background(), d.Info.AgentID); err != nil || ag.RevokedAt != nil {
		t.Errorf("tenant B revoked A's agent: %+v %v", ag, err)
	}
	after := siteDevices(t, d, d.Info.SiteID)
	if len(after) != len(before) {
		t.Fatalf("tenant B changed tenant A's devices: %d → %d", len(before), len(after))
	}
	for i := range after {
		if !slices.Equal(after[i].Ports, before[i].Ports) || !maps.Equal(after[i].Handles, before[i].Handles) {
			t.Errorf("tenant B changed device %s: %+v → %+v", after[i].ID, before[i], after[i])
		}
	}

	// The list APIs: tenant B's token gets 403/404 for A's ids, and its
	// own lists hold nothing of A.
	var tok struct {
		Token string `json:"token"`
	}
	api(t, d, "POST", "/api/users/"+b.UserID+"/tokens", nil, &tok)
	for _, path := range []string{
		"/api/tenants/" + d.Info.TenantID + "/sites", "/api/tenants/" + d.Info.TenantID + "/users",
		"/api/users/" + d.Info.UserID + "/tokens", "/api/sites/" + d.Info.SiteID + "/devices",
		"/api/sites/" + d.Info.SiteID + "/handles",
	} {
		err := d.API.Do(context.Background(), "GET", path, nil, nil, demo.Bearer(tok.Token))
		var re *cli.RelayError
		if !errors.As(err, &re) || (re.Status != 403 && re.Status != 404) {
			t.Errorf("tenant B: GET %s: %v, want 403 or 404", path, err)
		}
	}
	err := d.API.Do(context.Background(), "POST", "/api/devices/"+d.Info.DeviceID+"/ports/"+port+"/handle", nil, nil, demo.Bearer(tok.Token))
	var re *cli.RelayError
	if !errors.As(err, &re) || re.Status != 403 {
		t.Errorf("tenant B: mint a handle of A's device: %v, want 403", err)
	}
	var page struct{ Items []struct{ ID string } }
	if err := d.API.Do(context.Background(), "GET", "/api/tenants/"+b.ID+"/sites", nil, &page, demo.Bearer(tok.Token)); err != nil || len(page.Items) != 1 || page.Items[0].ID != b.SiteID {
		t.Errorf("tenant B's own sites: %v %+v", err, page.Items)
	}
}

// Every console form refuses bad input with the field and the reason,
// status 400, and stores nothing.
func TestConsoleBadInput(t *testing.T) {
	d := startDemo(t)
	c := signIn(t, d, d.Info.UserEmail, d.Info.UserPassword)
	before := siteDevices(t, d, d.Info.SiteID)
	site := "/sites/" + d.Info.SiteID
	dev := "/devices/" + d.Info.DeviceID
	for _, tc := range []struct {
		path   string
		form   url.Values
		reason string // shown at the field
	}{
		{"/sites", url.Values{"name": {"  "}}, "name is required"},
		{site + "/devices", url.Values{"host": {""}, "ports": {"80"}}, "host: enter the device&#39;s LAN address"},
		{site + "/devices", url.Values{"host": {"a/b"}, "ports": {"80"}}, "host &#34;a/b&#34; is not a host name or IP address"},
		{site + "/devices", url.Values{"host": {"192.0.2.1"}, "ports": {""}}, "ports: list at least one port"},
		{site + "/devices", url.Values{"host": {"192.0.2.1"}, "ports": {"http"}}, "ports: &#34;http&#34; is not a port number"},
		{site + "/devices", url.Values{"host": {"192.0.2.1"}, "ports": {"0"}}, "port 0 is out of range"},
		{site + "/devices", url.Values{"host": {"192.0.2.1"}, "ports": {"80,80"}}, "port 80 is listed twice"},
		{site + "/devices", url.Values{"host": {"192.0.2.1"}, "ports": {"80"}, "password": {"x"}}, "a password needs a username"},
		{dev + "/ports", url.Values{"ports": {""}}, "ports: list at least one port"},
		{dev + "/ports", url.Values{"ports": {"80; x"}}, "ports: &#34;x&#34; is not a port number"},
		{dev + "/ports", url.Values{"ports": {"65536"}}, "port 65536 is out of range"},
		{dev + "/open/9", nil, "port &#34;9&#34; is not one of device"},
		{dev + "/rtsp/abc", nil, "port &#34;abc&#34; is not one of device"},
	} {
		st, body := c.post(tc.path, tc.form)
		if st != http.StatusBadRequest || !strings.Contains(body, tc.reason) {
			t.Errorf("POST %s %v: %d, want 400 with %q", tc.path, tc.form, st, tc.reason)
		}
	}
	after := siteDevices(t, d, d.Info.SiteID)
	if len(after) != len(before) || !slices.Equal(after[0].Ports, before[0].Ports) {
		t.Errorf("refused forms changed the devices: %+v → %+v", before, after)
	}
}
