package console_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
)

// Workflow 7: Account → CLI tokens: mint an nt_ token (shown once), see
// it listed with its label, creation and last use, revoke it; the
// revoked token's next API call gets 401.
func TestConsoleTokens(t *testing.T) {
	d := startDemo(t)
	b := newBrowser(t, d.Info.RelayURL)
	b.SignIn(d.Info.UserEmail, d.Info.UserPassword)
	b.Run("Account → CLI tokens",
		chromedp.Click(`a[href="/account/tokens"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#mint-token`, chromedp.ByQuery),
		chromedp.SendKeys(`#token-label`, "backup script", chromedp.ByQuery),
		chromedp.Click(`#mint-token`, chromedp.ByQuery),
		chromedp.WaitVisible(`#new-token`, chromedp.ByQuery))
	tok := b.Text(`#new-token`)
	if !strings.HasPrefix(tok, "nt_") {
		t.Fatalf("minted %q", tok)
	}
	b.Shot("account-tokens-created")
	var list struct {
		Items []struct {
			ID, Label  string
			LastUsedAt *string `json:"last_used_at"`
		}
	}
	api(t, d, "GET", "/api/users/"+d.Info.UserID+"/tokens", nil, &list)
	var id string
	for _, it := range list.Items {
		if it.Label == "backup script" {
			id = it.ID
		}
	}
	if id == "" {
		t.Fatalf("the API lists no token labelled backup script: %+v", list.Items)
	}
	row := b.Text(`#tok-` + id)
	if !strings.Contains(row, "backup script") || !strings.Contains(row, "never") || !strings.Contains(row, "active") {
		t.Errorf("new token's row %q", row)
	}

	// It works, and its use shows; a reload does not show it again.
	ctx := context.Background()
	var sites struct{ Items []struct{ ID string } }
	if err := d.API.Do(ctx, "GET", "/api/tenants/"+d.Info.TenantID+"/sites", nil, &sites, demo.Bearer(tok)); err != nil {
		t.Fatalf("the new token: %v", err)
	}
	var html string
	b.Run("reload", chromedp.Navigate(d.Info.RelayURL+"/account/tokens"), chromedp.WaitVisible(`#tokens`, chromedp.ByQuery), chromedp.OuterHTML(`html`, &html, chromedp.ByQuery))
	if strings.Contains(html, tok) {
		t.Error("a reload shows the token again")
	}
	if row := b.Text(`#tok-` + id); !strings.Contains(row, "just now") {
		t.Errorf("row after a use: %q, want last used just now", row)
	}
	b.Shot("account-tokens")

	b.Run("revoke",
		chromedp.Click(`#tok-`+id+` button.danger`, chromedp.ByQuery),
		chromedp.WaitVisible(`#confirm-revoke-token`, chromedp.ByQuery),
		SubmitPage(`#confirm-revoke-token`),
		chromedp.WaitVisible(`#flash`, chromedp.ByQuery))
	if got := b.Text(`#flash`); got != "Token revoked; its next call gets 401." {
		t.Errorf("flash %q", got)
	}
	if row := b.Text(`#tok-` + id); !strings.Contains(row, "revoked") {
		t.Errorf("row after the revoke: %q", row)
	}
	err := d.API.Do(ctx, "GET", "/api/tenants/"+d.Info.TenantID+"/sites", nil, nil, demo.Bearer(tok))
	var re *cli.RelayError
	if !errors.As(err, &re) || re.Status != http.StatusUnauthorized {
		t.Errorf("the revoked token's next call: %v, want 401", err)
	}

	// Bad input, and another user's token.
	c := signIn(t, d, d.Info.UserEmail, d.Info.UserPassword)
	if st, body := c.post("/account/tokens", url.Values{"label": {strings.Repeat("x", 201)}}); st != http.StatusBadRequest || !strings.Contains(body, "label must be at most 200 bytes") || !strings.Contains(body, `id="token-label-error"`) {
		t.Errorf("long label: %d", st)
	}
	if st, body := c.post("/account/tokens", url.Values{"label": {"tab\there"}}); st != http.StatusBadRequest || !strings.Contains(body, "without control characters") {
		t.Errorf("control character: %d", st)
	}
	other := newTenant(t, d, "Other Tokens", false)
	var otherTok struct{ ID string }
	api(t, d, "POST", "/api/users/"+other.UserID+"/tokens", nil, &otherTok)
	if st, _ := c.post("/account/tokens/"+otherTok.ID+"/revoke", nil); st != http.StatusNotFound {
		t.Errorf("revoke another user's token: %d, want 404", st)
	}
	st, err2 := d.Relay.Store().GetAPIToken(ctx, otherTok.ID)
	if err2 != nil || st.RevokedAt != nil {
		t.Errorf("the other user's token: %+v %v", st, err2)
	}
}
