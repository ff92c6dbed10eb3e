package console_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/nanodems/connector/agent"
	"github.com/nanodems/connector/demo"
)

// downloads records the files Chromium saves into dir: suggested name by
// download GUID, and the GUIDs that completed.
type downloads struct {
	dir       string
	mu        sync.Mutex
	names     map[string]string
	completed []string
}

// allowDownloads makes b's Chromium save downloads into a temporary
// directory under their GUID and report them.
func allowDownloads(t *testing.T, b *Browser) *downloads {
	dl := &downloads{dir: t.TempDir(), names: map[string]string{}}
	chromedp.ListenTarget(b.ctx, func(ev any) {
		dl.mu.Lock()
		defer dl.mu.Unlock()
		switch ev := ev.(type) {
		case *browser.EventDownloadWillBegin:
			dl.names[ev.GUID] = ev.SuggestedFilename
		case *browser.EventDownloadProgress:
			if ev.State == browser.DownloadProgressStateCompleted {
				dl.completed = append(dl.completed, ev.GUID)
			}
		}
	})
	b.Run("allow downloads", browser.SetDownloadBehavior(browser.SetDownloadBehaviorBehaviorAllowAndName).WithDownloadPath(dl.dir).WithEventsEnabled(true))
	return dl
}

// next waits for the n-th completed download and returns its suggested
// name and content.
func (dl *downloads) next(t *testing.T, n int) (string, string) {
	t.Helper()
	var guid string
	waitFor(t, "a completed download", func() bool {
		dl.mu.Lock()
		defer dl.mu.Unlock()
		if len(dl.completed) < n {
			return false
		}
		guid = dl.completed[n-1]
		return true
	})
	b, err := os.ReadFile(filepath.Join(dl.dir, guid))
	if err != nil {
		t.Fatal(err)
	}
	dl.mu.Lock()
	defer dl.mu.Unlock()
	return dl.names[guid], string(b)
}

// Workflow: the site page's "Linux installer (.sh)" and "Windows installer
// (.cmd)" buttons download scripts made for the site: its relay URL, its
// pin, and a fresh token that enrolls an agent of that site; the page
// stays where it is.
func TestConsoleInstallerDownload(t *testing.T) {
	d := startDemo(t)
	site := newTenantSite(t, d, "Installer HQ")
	b := newBrowser(t, d.Info.RelayURL)
	dl := allowDownloads(t, b)
	b.SignIn(d.Info.UserEmail, d.Info.UserPassword)
	b.Run("open the site", chromedp.Navigate(d.Info.RelayURL+"/sites/"+site), chromedp.WaitVisible(`#installer-linux`, chromedp.ByQuery))
	b.Shot("site-installers")
	b.Run("download the Linux installer", chromedp.Click(`#installer-linux`, chromedp.ByQuery))
	name, sh := dl.next(t, 1)
	if name != "nanodems-agent-install-"+site+".sh" {
		t.Errorf("downloaded as %q", name)
	}
	for _, want := range []string{"#!/bin/sh\n", "RELAY_URL='" + d.Info.RelayURL + "'", "CA_PIN='" + d.Info.CAPin + "'", "CURL_PIN='sha256//", "installer for site " + site} {
		if !strings.Contains(sh, want) {
			t.Errorf(".sh lacks %q", want)
		}
	}
	m := regexp.MustCompile(`(?m)^ENROLL_TOKEN='(et_[^']+)'$`).FindStringSubmatch(sh)
	if m == nil {
		t.Fatalf(".sh holds no token:\n%s", sh)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := agent.Enroll(ctx, agent.EnrollOptions{RelayURL: d.Info.RelayURL, Token: m[1], Pin: d.Info.CAPin, Dir: t.TempDir()})
	if err != nil || id.SiteID != site {
		t.Fatalf("enroll with the downloaded installer's token: %v %+v", err, id)
	}

	b.Run("download the Windows installer", chromedp.Click(`#installer-windows`, chromedp.ByQuery))
	name, cmd := dl.next(t, 2)
	if name != "nanodems-agent-install-"+site+".cmd" {
		t.Errorf("downloaded as %q", name)
	}
	if !strings.Contains(cmd, `set "RELAY_URL=`+d.Info.RelayURL+`"`) || !strings.Contains(cmd, `set "ENROLL_TOKEN=et_`) || strings.Contains(cmd, m[1]) {
		t.Errorf(".cmd does not hold the relay and a fresh token:\n%s", cmd)
	}
	if got := b.Text(`#site-name`); got != "Installer HQ" {
		t.Errorf("after the downloads the page shows %q", got)
	}
}

// newTenantSite makes a site of the demo's tenant.
func newTenantSite(t *testing.T, d *demo.Demo, name string) string {
	t.Helper()
	var site struct {
		ID string `json:"id"`
	}
	api(t, d, "POST", "/api/tenants/"+d.Info.TenantID+"/sites", map[string]any{"name": name}, &site)
	return site.ID
}
