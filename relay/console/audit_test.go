package console_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/nanodems/connector/relay/store"
)

// Workflow 9: the audit log lists the tenant's access decisions and
// admin actions, newest first; it filters by action and by time, and
// pages back 100 at a time.
func TestConsoleAudit(t *testing.T) {
	d := startDemo(t)
	other := newTenant(t, d, "Audit Elsewhere", false)
	ctx := context.Background()
	st := d.Relay.Store()
	// 105 events of one action, an hour ago, and one of another tenant.
	past := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	for i := range 105 {
		if err := st.AppendAudit(ctx, store.AuditEvent{At: past, TenantID: d.Info.TenantID, Actor: "admin", Action: "proxy.admin_open", Target: fmt.Sprintf("h_%03d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.AppendAudit(ctx, store.AuditEvent{At: past, TenantID: other.ID, Actor: "admin", Action: "proxy.admin_open", Target: "h_other"}); err != nil {
		t.Fatal(err)
	}
	api(t, d, "POST", "/api/users/"+d.Info.UserID+"/tokens", nil, nil) // token.create, now

	b := newBrowser(t, d.Info.RelayURL)
	b.SignIn(d.Info.UserEmail, d.Info.UserPassword)
	b.Run("Audit", chromedp.Click(`a[href="/audit"]`, chromedp.ByQuery), chromedp.WaitVisible(`#audit`, chromedp.ByQuery))
	if got := b.Text(`#audit tbody tr td:nth-child(2)`); got != "user.signin" {
		t.Errorf("newest event %q, want the sign-in", got)
	}
	b.Shot("audit")

	actions := func() []string {
		var out []string
		b.Run("actions", chromedp.Evaluate(`Array.from(document.querySelectorAll("#audit tbody tr td:nth-child(2)")).map(td => td.textContent)`, &out))
		return out
	}
	b.Run("filter by action",
		SetValues(`#audit-action`, "proxy.admin_open"),
		chromedp.Click(`#audit-apply`, chromedp.ByQuery),
		chromedp.WaitVisible(`#audit-action[value="proxy.admin_open"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#audit-older`, chromedp.ByQuery))
	got := actions()
	if len(got) != 100 {
		t.Errorf("first page: %d events, want 100", len(got))
	}
	for _, a := range got {
		if a != "proxy.admin_open" {
			t.Fatalf("filtered page holds %q", a)
		}
	}
	if first := b.Text(`#audit tbody tr td:nth-child(4)`); first != "h_104" {
		t.Errorf("newest of the filter %q, want h_104", first)
	}
	b.Run("older", SubmitPage(`#audit-older`), chromedp.WaitVisible(`#audit-newest`, chromedp.ByQuery))
	var targets []string
	b.Run("targets", chromedp.Evaluate(`Array.from(document.querySelectorAll("#audit tbody tr td:nth-child(4)")).map(td => td.textContent)`, &targets))
	if strings.Join(targets, ",") != "h_004,h_003,h_002,h_001,h_000" {
		t.Errorf("second page %q", targets)
	}
	var older int
	b.Run("last page", chromedp.Evaluate(`document.querySelectorAll("#audit-older").length`, &older))
	if older != 0 {
		t.Error("the last page links an older one")
	}
	if body := b.Text(`main`); strings.Contains(body, "h_other") {
		t.Error("another tenant's event is listed")
	}

	// A window: since half an hour ago, the hour-old events are out.
	since := time.Now().Add(-30 * time.Minute).UTC().Format("2006-01-02T15:04:05")
	b.Run("filter by time",
		chromedp.Navigate(d.Info.RelayURL+"/audit"),
		chromedp.WaitVisible(`#audit-filter`, chromedp.ByQuery),
		SetValues(`#audit-since`, since),
		SubmitPage(`#audit-apply`),
		chromedp.WaitVisible(`#audit-since[value="`+since+`"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#audit`, chromedp.ByQuery))
	got = actions()
	if len(got) == 0 || strings.Contains(strings.Join(got, ","), "proxy.admin_open") || !strings.Contains(strings.Join(got, ","), "token.create") {
		t.Errorf("events since %s: %q", since, got)
	}
	until := past.Add(time.Second).Format("2006-01-02T15:04:05")
	b.Run("until", chromedp.Navigate(d.Info.RelayURL+"/audit?action=token.create&until="+until), chromedp.WaitVisible(`.empty`, chromedp.ByQuery))
	if got := b.Text(`.empty`); got != "No events match this filter." {
		t.Errorf("empty window says %q", got)
	}

	// Bad input: the field and the reason, 400.
	c := signIn(t, d, d.Info.UserEmail, d.Info.UserPassword)
	for q, want := range map[string]string{
		"since=yesterday":                               "since: enter a date and time",
		"until=2026-13-01T00:00":                        "until: enter a date and time",
		"since=2026-01-02T00:00&until=2026-01-01T00:00": "since must be before until",
		"before=abc":                                    "before must be an event id",
	} {
		st, body := c.do("GET", "/audit?"+q, nil, nil)
		if st != http.StatusBadRequest || !strings.Contains(body, want) || !strings.Contains(body, `id="audit-error"`) {
			t.Errorf("GET /audit?%s: %d, want 400 with %q", q, st, want)
		}
	}
}
