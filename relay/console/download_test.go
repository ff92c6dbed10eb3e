package console_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/relay"
)

// Workflow 6: Download lists nanodems-tunnel and nanodems-agent for the
// guide's five platforms with SHA-256 sums and links; what the relay's
// directory lacks is marked not built, with the command that builds it.
func TestConsoleDownload(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"nanodems-tunnel-linux-amd64":       "tunnel for linux/amd64",
		"nanodems-tunnel-windows-amd64.exe": "tunnel for windows/amd64",
		"nanodems-agent-linux-arm64":        "agent for linux/arm64",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := demo.Start(ctx, demo.Options{DataDir: t.TempDir(), Logger: quietLogger(), Relay: func(c *relay.Config) { c.DownloadsDir = dir }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)

	b := newBrowser(t, d.Info.RelayURL)
	b.SignIn(d.Info.UserEmail, d.Info.UserPassword)
	b.Run("Download", chromedp.Click(`a[href="/download"]`, chromedp.ByQuery), chromedp.WaitVisible(`#nanodems-agent-files`, chromedp.ByQuery))
	b.Shot("download")
	for _, prog := range []string{"nanodems-tunnel", "nanodems-agent"} {
		var plats []string
		b.Run("platforms", chromedp.Evaluate(`Array.from(document.querySelectorAll("#`+prog+`-files tbody tr")).map(tr => tr.dataset.platform)`, &plats))
		if strings.Join(plats, ",") != "linux/amd64,linux/arm64,darwin/arm64,darwin/amd64,windows/amd64" {
			t.Errorf("%s platforms %q", prog, plats)
		}
	}
	row := func(prog, plat string) string {
		return b.Text(`#` + prog + `-files tr[data-platform="` + plat + `"]`)
	}
	for name, body := range files {
		sum := sha256.Sum256([]byte(body))
		prog, plat := "nanodems-tunnel", "linux/amd64"
		switch {
		case strings.Contains(name, "windows"):
			plat = "windows/amd64"
		case strings.HasPrefix(name, "nanodems-agent"):
			prog, plat = "nanodems-agent", "linux/arm64"
		}
		if got := row(prog, plat); !strings.Contains(got, name) || !strings.Contains(got, hex.EncodeToString(sum[:])) {
			t.Errorf("%s %s row %q lacks %s and its sum", prog, plat, got, name)
		}
		// The link serves the file whose sum the page shows.
		var href string
		var ok bool
		b.Run("href", chromedp.AttributeValue(`a[href="/downloads/`+name+`"]`, "href", &href, &ok, chromedp.ByQuery))
		resp, err := cli.Relay{URL: d.Info.RelayURL, Pin: d.Info.CAPin}.HTTPClient().Get(d.Info.RelayURL + href)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(got) != body {
			t.Errorf("GET %s: %d %q", href, resp.StatusCode, got)
		}
	}
	if got := row("nanodems-agent", "darwin/arm64"); !strings.Contains(got, "not built") {
		t.Errorf("a missing build shows %q", got)
	}
	// The CLI session dialog links this relay's nanodems-tunnel builds.
	b.Run("CLI session", chromedp.Navigate(d.Info.RelayURL+"/cli-sessions?site="+d.Info.SiteID), chromedp.WaitVisible(`#open-cli-session`, chromedp.ByQuery),
		chromedp.Click(`#open-cli-session`, chromedp.ByQuery), chromedp.WaitVisible(`#cli-downloads`, chromedp.ByQuery))
	if got := b.Text(`#cli-downloads`); got != "Get nanodems-tunnel: linux/amd64 · windows/amd64" {
		t.Errorf("the dialog's downloads: %q", got)
	}
	b.Run("back", chromedp.Navigate(d.Info.RelayURL+"/download"), chromedp.WaitVisible(`#dl-build-command`, chromedp.ByQuery))
	if got := b.Text(`#dl-build-command`); got != "go run ./cmd/nanodems-dist -out DOWNLOADS_DIR -platforms linux/amd64,linux/arm64,darwin/arm64,darwin/amd64,windows/amd64" {
		t.Errorf("build command %q", got)
	}
}
