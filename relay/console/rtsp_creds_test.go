package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/nanodems/connector/rtsp"
)

// RTSP credentials: create one for a site (user and secret shown once,
// with the URL a VMS keeps), see it listed with its scope, revoke it; bad
// input and another tenant's ids are refused.
func TestConsoleRTSPCredentials(t *testing.T) {
	d := startDemo(t)
	b := newBrowser(t, d.Info.RelayURL)
	b.SignIn(d.Info.UserEmail, d.Info.UserPassword)
	b.Run("RTSP credentials → create",
		chromedp.Click(`a[href="/rtsp-credentials"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#create-rtsp-cred`, chromedp.ByQuery),
		chromedp.SendKeys(`#rtsp-cred-name`, "Milestone at HQ", chromedp.ByQuery),
		SetValues(`#rtsp-cred-site`, d.Info.SiteID),
		chromedp.Click(`#create-rtsp-cred`, chromedp.ByQuery),
		chromedp.WaitVisible(`#rtsp-cred-secret`, chromedp.ByQuery))
	user, secret, tmpl := b.Text(`#rtsp-cred-user`), b.Text(`#rtsp-cred-secret`), b.Text(`#rtsp-cred-url`)
	if !strings.HasPrefix(user, "rc_") || !strings.HasPrefix(secret, "rs_") {
		t.Fatalf("created user %q secret %q", user, secret)
	}
	if want := "rtsp://" + user + ":" + secret + "@"; !strings.HasPrefix(tmpl, want) || !strings.HasSuffix(tmpl, "/{handle}/") {
		t.Errorf("URL template %q, want %s…/{handle}/", tmpl, want)
	}
	b.Shot("rtsp-credentials-created")
	// The secret shown is the one the gateway checks.
	sc, err := d.Relay.Store().GetRTSPCredential(context.Background(), user)
	if err != nil || sc.HA1 != rtsp.HA1(user, secret) || sc.SiteID != d.Info.SiteID {
		t.Fatalf("stored credential %+v %v", sc, err)
	}
	row := b.Text(`#rc-` + user)
	if !strings.Contains(row, "Milestone at HQ") || !strings.Contains(row, "never") || strings.Contains(row, "all sites") {
		t.Errorf("row %q: want the name, its site, no expiry", row)
	}
	var html string
	b.Run("reload", chromedp.Navigate(d.Info.RelayURL+"/rtsp-credentials"), chromedp.WaitVisible(`#rtsp-creds`, chromedp.ByQuery), chromedp.OuterHTML(`html`, &html, chromedp.ByQuery))
	if strings.Contains(html, secret) {
		t.Error("a reload shows the secret again")
	}
	b.Run("revoke",
		SubmitPage(`#rc-`+user+` button.danger`),
		chromedp.WaitVisible(`#flash`, chromedp.ByQuery))
	if got := b.Text(`#flash`); got != "RTSP credential revoked; its streams have ended." {
		t.Errorf("flash %q", got)
	}
	var list struct{ Credentials []struct{ ID string } }
	api(t, d, "GET", "/api/tenants/"+d.Info.TenantID+"/rtsp-credentials", nil, &list)
	if len(list.Credentials) != 0 {
		t.Errorf("after the revoke the API lists %+v", list.Credentials)
	}
	b.Run("empty list", chromedp.WaitVisible(`p.empty`, chromedp.ByQuery))

	// Bad input, and another tenant's site and credential.
	c := signIn(t, d, d.Info.UserEmail, d.Info.UserPassword)
	if st, body := c.post("/rtsp-credentials", url.Values{"name": {""}}); st != http.StatusBadRequest || !strings.Contains(body, `id="rtsp-cred-error"`) {
		t.Errorf("empty name: %d", st)
	}
	other := newTenant(t, d, "Other RTSP", false)
	if st, _ := c.post("/rtsp-credentials", url.Values{"name": {"x"}, "site_id": {other.SiteID}}); st != http.StatusNotFound {
		t.Errorf("another tenant's site: %d, want 404", st)
	}
	var oc struct{ ID string }
	api(t, d, "POST", "/api/tenants/"+other.ID+"/rtsp-credentials", map[string]string{"name": "theirs"}, &oc)
	if st, _ := c.post("/rtsp-credentials/"+oc.ID+"/revoke", nil); st != http.StatusNotFound {
		t.Errorf("revoke another tenant's credential: %d, want 404", st)
	}
	if sc, err := d.Relay.Store().GetRTSPCredential(context.Background(), oc.ID); err != nil || sc.RevokedAt != nil {
		t.Errorf("the other tenant's credential: %+v %v", sc, err)
	}
}
