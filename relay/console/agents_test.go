package console_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/relay/store"
)

// Workflow 8: Agents lists every agent of the tenant with its site, state,
// relay, version, address, heartbeat, streams and bytes; the live cells
// refresh every 5 s without a reload; Revoke (confirmed) kicks the agent
// at once.
func TestConsoleAgents(t *testing.T) {
	d := startDemo(t)
	other := newTenant(t, d, "Agents Elsewhere", false)
	b := newBrowser(t, d.Info.RelayURL)
	b.SignIn(d.Info.UserEmail, d.Info.UserPassword)
	b.Run("Agents", chromedp.Click(`a[href="/agents"]`, chromedp.ByQuery), chromedp.WaitVisible(`#agents`, chromedp.ByQuery))
	row := `#agent-` + d.Info.AgentID
	var health struct{ Node string }
	api(t, d, "GET", "/healthz", nil, &health)
	cell := func(f string) string { return b.Text(row + ` [data-f="` + f + `"]`) }
	if got := cell("status"); got != "online" {
		t.Errorf("status %q", got)
	}
	if got := cell("relay"); got != health.Node || got == "" {
		t.Errorf("Relay column %q, want the node %q", got, health.Node)
	}
	if got := cell("version"); got == "" || got == "—" {
		t.Errorf("version %q", got)
	}
	if got := cell("remote"); !strings.HasPrefix(got, "127.0.0.1:") {
		t.Errorf("remote address %q", got)
	}
	if got := b.Text(row + ` td`); got != "Demo site" {
		t.Errorf("site %q", got)
	}
	if got := b.Text(`#agents tbody`); strings.Contains(got, other.SiteID) || strings.Contains(got, "Agents Elsewhere") {
		t.Errorf("another tenant's agents are listed: %q", got)
	}
	if got := cell("streams"); got != "0" {
		t.Errorf("active streams %q before any tunnel", got)
	}

	// A tunnel opens: the page shows it on its next refresh, without a
	// reload (the marker set on this document survives).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := cli.DialTunnel(ctx, cli.Relay{URL: d.Info.RelayURL, Token: d.Info.Token, Pin: d.Info.CAPin}, d.Info.EchoHandle)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	var marker bool
	b.Run("refresh in place",
		chromedp.Evaluate(`window.__sameDocument = true`, &marker),
		chromedp.WaitVisible(`#agents-refreshed:not(:empty)`, chromedp.ByQuery),
		chromedp.Poll(`document.querySelector('`+row+` [data-f="streams"]').textContent === "1"`, nil, chromedp.WithPollingTimeout(15*time.Second)),
		chromedp.Evaluate(`window.__sameDocument === true`, &marker))
	if !marker {
		t.Error("the page reloaded instead of refreshing in place")
	}
	if got := cell("heartbeat"); !strings.HasSuffix(got, "s ago") {
		t.Errorf("last heartbeat %q", got)
	}
	if got := cell("udp_drops"); got != "0" {
		t.Errorf("UDP drops %q, want the agent's 0", got)
	}
	b.Shot("agents")

	b.Run("revoke",
		chromedp.Click(row+` [data-dialog="revoke-agent"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#confirm-revoke-agent`, chromedp.ByQuery))
	b.Shot("agents-revoke")
	b.Run("confirm", SubmitPage(`#confirm-revoke-agent`), chromedp.WaitVisible(`#flash`, chromedp.ByQuery))
	if got := b.Text(`#flash`); got != "Agent "+d.Info.AgentID+" revoked. Its session was closed." {
		t.Errorf("flash %q", got)
	}
	if got := cell("status"); got != "revoked" {
		t.Errorf("status after the revoke %q", got)
	}
	// Kicked at once: its tunnel is cut, the relay holds no session, and
	// the store refuses its certificate from now on.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(conn); err != nil && strings.Contains(err.Error(), "deadline") {
		t.Error("the revoked agent's tunnel is still open")
	}
	var agents []struct {
		ID      string
		Online  bool
		Revoked bool
	}
	api(t, d, "GET", "/api/sites/"+d.Info.SiteID+"/agents", nil, &agents)
	if len(agents) != 1 || agents[0].Online || !agents[0].Revoked {
		t.Errorf("agents after the revoke: %+v", agents)
	}
	a, err := d.Relay.Store().GetAgent(ctx, d.Info.AgentID)
	if err != nil || a.RevokedAt == nil {
		t.Errorf("stored agent %+v %v", a, err)
	}

	// Without the script, Revoke is a link to the confirmation.
	a2 := store.Agent{ID: "agt_second", SiteID: d.Info.SiteID, CertSerial: "2", CreatedAt: time.Now()}
	if err := d.Relay.Store().CreateAgent(ctx, a2); err != nil {
		t.Fatal(err)
	}
	ca := signIn(t, d, d.Info.UserEmail, d.Info.UserPassword)
	if st, body := ca.do("GET", "/agents?revoke=agt_second", nil, nil); st != 200 || !strings.Contains(body, `<dialog id="revoke-agent" open`) || !strings.Contains(body, `action="/agents/agt_second/revoke"`) {
		t.Errorf("GET /agents?revoke=: %d", st)
	}
	if st, _ := ca.do("GET", "/agents?revoke="+d.Info.AgentID, nil, nil); st != http.StatusNotFound {
		t.Errorf("the confirmation of an agent already revoked: %d, want 404", st)
	}

	// Another tenant's agent, and no agent at all.
	c := signIn(t, d, other.Email, other.Password)
	if st, _ := c.do("GET", "/agents?revoke="+d.Info.AgentID, nil, nil); st != http.StatusNotFound {
		t.Errorf("tenant B opens the confirmation for A's agent: %d, want 404", st)
	}
	if st, _ := c.post("/agents/"+d.Info.AgentID+"/revoke", nil); st != http.StatusForbidden {
		t.Errorf("tenant B revokes A's agent: %d, want 403", st)
	}
	if st, _ := c.post("/agents/agt_nosuch/revoke", nil); st != http.StatusNotFound {
		t.Errorf("unknown agent: %d, want 404", st)
	}
	if st, body := c.do("GET", "/agents", nil, nil); st != 200 || strings.Contains(body, d.Info.AgentID) || !strings.Contains(body, "No agents yet") {
		t.Errorf("tenant B's Agents page: %d", st)
	}
}

// GET /api/agents pages a tenant's agents: each agent once, across pages,
// and refuses another tenant and a bad page.
func TestAgentsAPIPages(t *testing.T) {
	d := startDemo(t)
	ctx := context.Background()
	st := d.Relay.Store()
	site, err := st.GetSite(ctx, d.Info.SiteID)
	if err != nil {
		t.Fatal(err)
	}
	seedAgents(t, st, site, 7)
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		var raw struct {
			Items []map[string]any
			Next  string
		}
		api(t, d, "GET", "/api/agents?tenant_id="+d.Info.TenantID+"&limit=3&cursor="+cursor, nil, &raw)
		for _, it := range raw.Items {
			id, _ := it["id"].(string)
			if seen[id] {
				t.Errorf("agent %s on two pages", id)
			}
			seen[id] = true
			if it["site_name"] != "Demo site" {
				t.Errorf("agent %s site_name %v", id, it["site_name"])
			}
		}
		if raw.Next == "" {
			break
		}
		if pages > 5 {
			t.Fatal("more pages than agents")
		}
		cursor = raw.Next
	}
	if len(seen) != 8 || !seen[d.Info.AgentID] {
		t.Errorf("listed %d agents, want the demo's and 7 more: %v", len(seen), seen)
	}
	for path, want := range map[string]int{
		"/api/agents":                      400, // the admin key names its tenant
		"/api/agents?tenant_id=ten_nosuch": 404,
		"/api/agents?tenant_id=" + d.Info.TenantID + "&limit=0":      400,
		"/api/agents?tenant_id=" + d.Info.TenantID + "&cursor=bogus": 400,
	} {
		if got := apiStatus(d, "GET", path, nil, nil); got != want {
			t.Errorf("GET %s: %d, want %d", path, got, want)
		}
	}
}

// seedAgents enrolls n agents of site in the store (none connected).
func seedAgents(t testing.TB, st store.Store, site store.Site, n int) {
	t.Helper()
	for i := range n {
		a := store.Agent{ID: fmt.Sprintf("agt_seed%04d", i), SiteID: site.ID, CertSerial: fmt.Sprintf("%x", 1000+i), CreatedAt: time.Now()}
		if err := st.CreateAgent(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
}
