package console_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// Account → CLI tokens shows the tenant's OpCon licenses read-only: each
// by its id and the last four characters of its GUID, active or revoked,
// never the whole GUID and with nothing to press.
func TestConsoleLicensesReadOnly(t *testing.T) {
	d := startDemo(t)
	var rotated, first struct {
		ID   string `json:"id"`
		GUID string `json:"guid"`
		Hint string `json:"hint"`
	}
	api(t, d, "POST", "/api/admin/tenants/"+d.Info.TenantID+"/licenses", nil, &first)
	api(t, d, "POST", "/api/admin/tenants/"+d.Info.TenantID+"/licenses", nil, &rotated)
	api(t, d, "DELETE", "/api/admin/tenants/"+d.Info.TenantID+"/licenses/"+first.ID, nil, nil)

	b := newBrowser(t, d.Info.RelayURL)
	b.SignIn(d.Info.UserEmail, d.Info.UserPassword)
	var html string
	b.Run("Account → CLI tokens → licenses",
		chromedp.Click(`a[href="/account/tokens"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#license-list`, chromedp.ByQuery),
		chromedp.OuterHTML(`#licenses`, &html, chromedp.ByQuery))
	if row := b.Text(`#lic-` + rotated.ID); !strings.Contains(row, "…"+rotated.Hint) || !strings.Contains(row, "active") {
		t.Errorf("rotated license's row %q", row)
	}
	if row := b.Text(`#lic-` + first.ID); !strings.Contains(row, "…"+first.Hint) || !strings.Contains(row, "revoked") {
		t.Errorf("revoked license's row %q", row)
	}
	for _, g := range []string{first.GUID, rotated.GUID} {
		if strings.Contains(html, g) {
			t.Errorf("the licenses section shows a whole GUID: %s", html)
		}
	}
	for _, tag := range []string{"<form", "<button", "<input"} {
		if strings.Contains(html, tag) {
			t.Errorf("the read-only licenses section holds %s: %s", tag, html)
		}
	}
	b.Shot("account-licenses")
}
