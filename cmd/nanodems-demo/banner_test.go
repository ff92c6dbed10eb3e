package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// checkConsoleSignIn: the console URL, email and password the demo
// printed sign a browser in: the sign-in form answers with the session
// cookie and a redirect, and a wrong password is refused.
func checkConsoleSignIn(t *testing.T, info map[string]string) {
	t.Helper()
	c := cli.Relay{URL: info["relay_url"], Pin: info["ca_pin"]}.HTTPClient()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	defer c.CloseIdleConnections()
	if !strings.HasPrefix(info["console_url"], info["relay_url"]) {
		t.Errorf("console_url %q is not on the relay %q", info["console_url"], info["relay_url"])
	}
	login := func(password string) *http.Response {
		resp, err := c.Get(info["relay_url"] + "/login")
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
		if m == nil {
			t.Fatalf("sign-in page has no csrf field:\n%s", page)
		}
		req, _ := http.NewRequest("POST", info["relay_url"]+"/login", strings.NewReader(url.Values{"csrf": {string(m[1])}, "email": {info["user_email"]}, "password": {password}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for _, ck := range resp.Cookies() {
			req.AddCookie(ck)
		}
		resp, err = c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := login(info["user_password"])
	var session bool
	for _, ck := range resp.Cookies() {
		session = session || (ck.Name == "nd_session" && strings.HasPrefix(ck.Value, "ns_"))
	}
	if resp.StatusCode != http.StatusSeeOther || !session {
		t.Errorf("sign-in with the printed email and password: %d, session cookie %v", resp.StatusCode, session)
	}
	if resp := login(info["user_password"] + "x"); resp.StatusCode == http.StatusSeeOther {
		t.Error("a wrong password signed in too")
	}
}

// TestBannerFirst: the text output starts with the console URL, the
// user's email and password, before any other address or command; and
// the password is not the same from one start to the next.
func TestBannerFirst(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := func() *demo.Demo {
		d, err := demo.Start(ctx, demo.Options{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	d := start()
	defer d.Close()
	var b bytes.Buffer
	printInfo(&b, d.Info)
	var lines []string
	for l := range strings.Lines(b.String()) {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	want := []string{"console " + d.Info.ConsoleURL, "email " + d.Info.UserEmail, "password " + d.Info.UserPassword}
	if len(lines) < 4 {
		t.Fatalf("output:\n%s", b.String())
	}
	for i, w := range want {
		if f := strings.Join(strings.Fields(lines[i+1]), " "); f != w {
			t.Errorf("line %d is %q; want %q\n%s", i+2, lines[i+1], w, b.String())
		}
	}
	if d.Info.ConsoleURL != d.Info.RelayURL+"/" || d.Info.UserEmail != demo.OperatorEmail || len(d.Info.UserPassword) < 12 {
		t.Errorf("console %q, email %q, password %q", d.Info.ConsoleURL, d.Info.UserEmail, d.Info.UserPassword)
	}
	js, _ := json.Marshal(d.Info)
	var info map[string]string
	json.Unmarshal(js, &info)
	checkConsoleSignIn(t, info)

	d2 := start()
	defer d2.Close()
	if d2.Info.UserPassword == d.Info.UserPassword {
		t.Errorf("two starts made the same password %q", d.Info.UserPassword)
	}
}

// TestDemoDownloads: the demo builds nanodems-tunnel and nanodems-agent
// for this machine into its downloads directory, the relay lists them
// with their sums, and the downloaded tunnel runs.
func TestDemoDownloads(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "downloads")
	d, err := demo.Start(ctx, demo.Options{DataDir: t.TempDir(), DownloadsDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Info.DownloadsURL != d.Info.RelayURL+"/api/downloads" {
		t.Errorf("downloads_url %q", d.Info.DownloadsURL)
	}
	if err := d.Downloads(ctx); err != nil {
		t.Fatal(err)
	}
	var list []struct{ Name, Program, OS, Arch, SHA256, URL string }
	if err := d.API.Do(ctx, "GET", "/api/downloads", nil, &list, nil); err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("the demo offers %+v; want this machine's two programs", list)
	}
	for _, l := range list {
		if l.OS != runtime.GOOS || l.Arch != runtime.GOARCH {
			t.Errorf("%s is for %s/%s", l.Name, l.OS, l.Arch)
		}
	}
	resp, err := d.API.Client.Get(d.Info.RelayURL + "/downloads/nanodems-tunnel-" + runtime.GOOS + "-" + runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "nanodems-tunnel")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || os.WriteFile(bin, b, 0o755) != nil {
		t.Fatalf("download: %d, %d bytes", resp.StatusCode, len(b))
	}
	if out, err := exec.Command(bin, "version").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "nanodems-tunnel ") {
		t.Errorf("downloaded nanodems-tunnel version: %v %q", err, out)
	}
}
