package console_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/nanodems/connector/cli"
)

// Workflow 5: the site page's "Open CLI session" → pick sites → a
// one-shot dialog with the ops_ token and the ready command; the command
// runs the real CLI; the site's Active sessions lists it; Revoke there
// ends the running CLI on its next request.
func TestConsoleCLISession(t *testing.T) {
	d := startDemo(t)
	other := newTenant(t, d, "Elsewhere", false)
	var second struct {
		ID string `json:"id"`
	}
	api(t, d, "POST", "/api/tenants/"+d.Info.TenantID+"/sites", map[string]any{"name": "Ankara depot"}, &second)

	b := newBrowser(t, d.Info.RelayURL)
	b.SignIn(d.Info.UserEmail, d.Info.UserPassword)
	b.Run("site page → Open CLI session",
		chromedp.Navigate(d.Info.RelayURL+"/sites/"+d.Info.SiteID),
		chromedp.WaitVisible(`#cli-sessions`, chromedp.ByQuery),
		chromedp.Click(`#open-cli-button`, chromedp.ByQuery),
		chromedp.WaitVisible(`#cli-session-form`, chromedp.ByQuery))
	// The site the button came from is picked; the tenant's other site is
	// offered; another tenant's is not.
	var picked []string
	var offered string
	b.Run("read the picks",
		chromedp.Evaluate(`Array.from(document.querySelectorAll("input[name=site_id]:checked")).map(i => i.value)`, &picked),
		chromedp.Text(`.site-picks`, &offered, chromedp.ByQuery))
	if !slices.Equal(picked, []string{d.Info.SiteID}) {
		t.Errorf("picked sites %q, want the site page's %s", picked, d.Info.SiteID)
	}
	if !strings.Contains(offered, "Ankara depot") || strings.Contains(offered, "Elsewhere") {
		t.Errorf("offered sites: %q", offered)
	}
	b.Shot("cli-sessions")
	b.Run("open the session",
		chromedp.SendKeys(`#cli-label`, "field laptop", chromedp.ByQuery),
		chromedp.Click(`#open-cli-session`, chromedp.ByQuery),
		chromedp.WaitVisible(`#cli-created`, chromedp.ByQuery))
	token, cmd := b.Text(`#cli-token`), b.Text(`#cli-command`)
	b.Shot("cli-session-created")
	if !strings.HasPrefix(token, "ops_") {
		t.Fatalf("token %q", token)
	}
	f := strings.Fields(cmd)
	flag := func(name string) string {
		i := slices.Index(f, name)
		if i < 0 || i+1 >= len(f) {
			t.Fatalf("command %q has no %s", cmd, name)
		}
		return f[i+1]
	}
	if len(f) < 2 || f[0] != "nanodems-tunnel" || f[1] != "run" || flag("--token") != token || flag("--relay") != d.Info.RelayURL || flag("--ca-pin") != d.Info.CAPin {
		t.Fatalf("command %q; want nanodems-tunnel run --relay %s --token %s --ca-pin %s", cmd, d.Info.RelayURL, token, d.Info.CAPin)
	}
	b.Run("copy the command", chromedp.Click(`#copy-cli-command`, chromedp.ByQuery), chromedp.WaitVisible(`#toast`, chromedp.ByQuery))
	if got := b.Text(`#toast`); got != "Copied the command to the clipboard." {
		t.Errorf("copy says %q", got)
	}
	var loc string
	b.Run("location", chromedp.Location(&loc))
	if strings.Contains(loc, token) {
		t.Errorf("the token is in the URL %s", loc)
	}

	// The command works: the real CLI, with the command's flags.
	logs := &syncLog{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	tun, err := cli.Open(ctx, cli.Options{
		Relay:  cli.Relay{URL: flag("--relay"), Token: flag("--token"), Pin: flag("--ca-pin")},
		NoBind: true, Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatalf("the dialog's command does not run: %v", err)
	}
	go func() {
		<-tun.Done()
		done <- tun.Err()
	}()
	defer tun.Close()
	plan, err := cli.FetchPlan(ctx, cli.Relay{URL: d.Info.RelayURL, Token: token, Pin: d.Info.CAPin})
	if err != nil || len(plan.Entries) == 0 {
		t.Fatalf("the session's plan: %+v %v", plan, err)
	}
	c, err := tun.DialPlan(ctx, plan.Entries[0].IP, plan.Entries[0].Port)
	if err != nil {
		t.Fatalf("dial %s through the session: %v", plan.Entries[0], err)
	}
	c.Close()

	// Never shown again: not on a reload of the page, not on the site page.
	for _, p := range []string{"/cli-sessions", "/cli-sessions?site=" + d.Info.SiteID, "/sites/" + d.Info.SiteID} {
		var html string
		b.Run("reload "+p, chromedp.Navigate(d.Info.RelayURL+p), chromedp.WaitVisible(`main`, chromedp.ByQuery), chromedp.OuterHTML(`html`, &html, chromedp.ByQuery))
		if strings.Contains(html, token) {
			t.Errorf("%s shows the token again", p)
		}
	}

	// Active sessions on the site page: label, issued, last used, expiry, cap.
	row := b.Text(`#sessions tbody tr`)
	for _, want := range []string{"field laptop", "UTC", "just now"} {
		if !strings.Contains(row, want) {
			t.Errorf("Active sessions row %q lacks %q", row, want)
		}
	}
	b.Shot("site-cli-sessions")
	b.Run("revoke",
		chromedp.Click(`#sessions button.danger`, chromedp.ByQuery),
		chromedp.WaitVisible(`#confirm-revoke-session`, chromedp.ByQuery),
		SubmitPage(`#confirm-revoke-session`),
		chromedp.WaitVisible(`#flash`, chromedp.ByQuery))
	if got := b.Text(`#flash`); !strings.HasPrefix(got, "CLI session revoked") {
		t.Errorf("flash %q", got)
	}
	if got := b.Text(`[data-count="sessions"]`); got != "0" {
		t.Errorf("Active sessions after the revoke: %s", got)
	}
	select {
	case err := <-done:
		if err == nil || err.Error() != "the relay refused this CLI session: CLI session revoked" {
			t.Fatalf("the CLI ended with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("the CLI still runs after the revoke; its log:\n%s", logs.String())
	}
	if _, err := cli.FetchPlan(ctx, cli.Relay{URL: d.Info.RelayURL, Token: token, Pin: d.Info.CAPin}); err == nil || !strings.Contains(err.Error(), "401") && !strings.Contains(err.Error(), "revoked") {
		t.Errorf("plan with the revoked token: %v", err)
	}

	// Bad input: no site picked is refused at the field; another
	// tenant's site is refused; nothing is minted.
	hc := signIn(t, d, d.Info.UserEmail, d.Info.UserPassword)
	if st, body := hc.post("/cli-sessions", url.Values{"label": {"x"}}); st != http.StatusBadRequest || !strings.Contains(body, "sites: pick at least one site") {
		t.Errorf("no site: %d", st)
	}
	if st, body := hc.post("/cli-sessions", url.Values{"site_id": {d.Info.SiteID}, "label": {strings.Repeat("x", 201)}}); st != http.StatusBadRequest || !strings.Contains(body, "label must be at most 200 bytes") {
		t.Errorf("long label: %d", st)
	}
	if st, _ := hc.post("/cli-sessions", url.Values{"site_id": {other.SiteID}}); st != http.StatusForbidden {
		t.Errorf("another tenant's site: %d, want 403", st)
	}
	if st, _ := hc.post("/cli-sessions/cli_nosuch/revoke", url.Values{"site_id": {d.Info.SiteID}}); st != http.StatusNotFound {
		t.Errorf("revoke an unknown session: %d, want 404", st)
	}
	live, err := d.Relay.Store().ListCLISessions(ctx, d.Info.SiteID, time.Now())
	if err != nil || len(live) != 0 {
		t.Errorf("live sessions after the refusals: %+v %v", live, err)
	}
}

// syncLog is a log destination read while written.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
