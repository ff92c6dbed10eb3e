package console_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/nanodems/connector/demo"
)

// The site page lists each device's handles with Rotate and Revoke, each
// behind a confirm dialog. Rotate gives the port a new handle (the flash
// names it) and Revoke leaves it none; either way the old handle answers
// 404 on /c/ at once, and the audit has the API's record.
func TestConsoleHandleRotateRevoke(t *testing.T) {
	d := startDemo(t)
	var dev apiDevice
	api(t, d, "GET", "/api/devices/"+d.Info.DeviceID, nil, &dev)
	old := d.Info.HTTPHandle
	port := ""
	for p, h := range dev.Handles {
		if h == old {
			port = p
		}
	}
	if port == "" {
		t.Fatalf("the demo device's handles %v lack its HTTP handle %s", dev.Handles, old)
	}
	// The camera page through /c/, with the user's nt_ token.
	user := signIn(t, d, d.Info.UserEmail, d.Info.UserPassword)
	cam := func(h string) int {
		t.Helper()
		status, _ := user.do("GET", "/c/"+h+"/", nil, http.Header{"Authorization": {"Bearer " + d.Info.Token}})
		return status
	}
	// The camera answers its own way (a redirect to its login page);
	// a revoked handle answers the relay's 404.
	live := cam(old)
	if live == 404 || live >= 500 {
		t.Fatalf("/c/%s/ before the rotate: %d", old, live)
	}

	b := newBrowser(t, d.Info.RelayURL)
	b.SignIn(d.Info.UserEmail, d.Info.UserPassword)
	row := "#dev-" + dev.ID
	entry := func(h string) string { return row + ` .handle[data-handle="` + h + `"]` }
	b.Run("site page", chromedp.Navigate(d.Info.RelayURL+"/sites/"+d.Info.SiteID), chromedp.WaitVisible(entry(old), chromedp.ByQuery))
	if got := b.Text(entry(old)); !strings.Contains(got, old) || !strings.Contains(got, ":"+port) {
		t.Errorf("handle entry %q, want %s and :%s", got, old, port)
	}
	b.Run("Rotate → confirm",
		chromedp.Click(entry(old)+` button[data-dialog="rotate-handle"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#confirm-rotate-handle`, chromedp.ByQuery))
	if got := b.Text(`#rotate-handle-title`); !strings.Contains(got, old) {
		t.Errorf("rotate dialog %q does not name %s", got, old)
	}
	b.Shot("site-handle-rotate")
	b.Run("rotate", SubmitPage(`#confirm-rotate-handle`), chromedp.WaitVisible(`#flash`, chromedp.ByQuery))
	var rotated apiDevice
	api(t, d, "GET", "/api/devices/"+dev.ID, nil, &rotated)
	nu := rotated.Handles[port]
	if nu == "" || nu == old {
		t.Fatalf("after the rotate, port %s's handle is %q (was %s)", port, nu, old)
	}
	if got, want := b.Text(`#flash`), "Handle "+old+" rotated: the new handle is "+nu+";"; !strings.HasPrefix(got, want) {
		t.Errorf("flash %q, want it to start %q", got, want)
	}
	b.Run("the row lists the new handle", chromedp.WaitVisible(entry(nu), chromedp.ByQuery))
	b.Shot("site-handles")
	if s := cam(old); s != 404 {
		t.Errorf("/c/%s/ after the rotate: %d, want 404", old, s)
	}
	if s := cam(nu); s != live {
		t.Errorf("/c/%s/ (the new handle): %d, want %d as the old one did", nu, s, live)
	}
	wantConsoleAudit(t, d, "handle.rotate", old, "new handle "+nu)

	b.Run("Revoke → confirm",
		chromedp.Click(entry(nu)+` button[data-dialog="revoke-handle"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#confirm-revoke-handle`, chromedp.ByQuery),
		SubmitPage(`#confirm-revoke-handle`),
		chromedp.WaitVisible(`#flash`, chromedp.ByQuery))
	if got := b.Text(`#flash`); !strings.HasPrefix(got, "Handle "+nu+" revoked") {
		t.Errorf("flash %q", got)
	}
	if s := cam(nu); s != 404 {
		t.Errorf("/c/%s/ after the revoke: %d, want 404", nu, s)
	}
	wantConsoleAudit(t, d, "handle.revoke", nu, "port "+port)
	var n int
	b.Run("count the row's handles", chromedp.Evaluate(`document.querySelectorAll(`+strconv.Quote(row+` .handle[data-port="`+port+`"]`)+`).length`, &n))
	if n != 0 {
		t.Errorf("the row still lists %d handles of port %s after the revoke", n, port)
	}
	var revoked apiDevice
	api(t, d, "GET", "/api/devices/"+dev.ID, nil, &revoked)
	if h := revoked.Handles[port]; h != "" {
		t.Errorf("port %s still has handle %s after the revoke", port, h)
	}
}

// wantConsoleAudit requires an audit record of action on target, made by
// the demo's user (the console calls the API as the signed-in user),
// whose detail holds detail.
func wantConsoleAudit(t *testing.T, d *demo.Demo, action, target, detail string) {
	t.Helper()
	var evs []struct{ Actor, Target, Detail string }
	api(t, d, "GET", "/api/audit?action="+action, nil, &evs)
	for _, e := range evs {
		if e.Target == target && strings.Contains(e.Detail, detail) && e.Actor == "user:"+d.Info.UserID {
			return
		}
	}
	t.Errorf("no audit %s of %s by user:%s with %q in %+v", action, target, d.Info.UserID, detail, evs)
}
