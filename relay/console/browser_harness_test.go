package console_test

// The shared harness of the console's tests: a real relay, agent and
// targets (package demo), signed-in HTTP clients, and a headless Chromium
// driven by chromedp that fails the test on any console error, uncaught
// exception, failed request or HTTP status >= 400 the test did not
// announce with Browser.Expect.
//
// Screenshots: Browser.Shot saves the page at 1280×800. With
// CONSOLE_SCREENSHOTS=1 they go to docs/console/ (committed, linked from
// README); otherwise to the test's temporary directory.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"go.uber.org/goleak"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/syncbuf"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const chromiumPath = "/usr/bin/chromium"

// needChromium skips without Chromium, unless CI says it must be there.
func needChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if ci := os.Getenv("CI"); ci == "" || ci == "false" || ci == "0" {
			t.Skipf("%s not installed (CI installs it in .ci/run): %v", chromiumPath, err)
		}
		t.Fatalf("CI=%s but %s is missing: %v", os.Getenv("CI"), chromiumPath, err)
	}
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startDemo runs a relay, an enrolled agent and the demo's targets.
func startDemo(t *testing.T) *demo.Demo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := demo.Start(ctx, demo.Options{DataDir: t.TempDir(), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// api is an admin-key call of the demo's API.
func api(t *testing.T, d *demo.Demo, method, path string, in, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.API.Do(ctx, method, path, in, out, demo.Admin(d.Info.AdminKey)); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
}

// apiStatus is the status of an admin-key call (0 for a transport error).
func apiStatus(d *demo.Demo, method, path string, in, out any) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := d.API.Do(ctx, method, path, in, out, demo.Admin(d.Info.AdminKey))
	var re *cli.RelayError
	switch {
	case err == nil:
		return 200
	case errors.As(err, &re):
		return re.Status
	}
	return 0
}

// tenant is a second tenant with a user and a site, for isolation tests.
type tenant struct {
	ID, UserID, Email, Password, SiteID string
}

// newTenant creates a tenant, a user of it (superadmin if asked) and a
// site.
func newTenant(t *testing.T, d *demo.Demo, name string, superadmin bool) tenant {
	t.Helper()
	var ten, u, site struct {
		ID string `json:"id"`
	}
	api(t, d, "POST", "/api/admin/tenants", map[string]string{"name": name}, &ten)
	email := strings.ToLower(strings.ReplaceAll(name, " ", "-")) + "@test.invalid"
	pw := "password-" + rand.Text()
	api(t, d, "POST", "/api/tenants/"+ten.ID+"/users", map[string]any{"email": email, "password": pw, "superadmin": superadmin}, &u)
	api(t, d, "POST", "/api/tenants/"+ten.ID+"/sites", map[string]any{"name": name + " site"}, &site)
	return tenant{ID: ten.ID, UserID: u.ID, Email: email, Password: pw, SiteID: site.ID}
}

// --- HTTP clients -------------------------------------------------------

// client is a signed-in browser without a browser: a cookie jar and the
// session's antiforgery token.
type client struct {
	t    *testing.T
	base string
	c    *http.Client
	csrf string
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn signs email in through the sign-in form.
func signIn(t *testing.T, d *demo.Demo, email, password string) *client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	hc := cli.Relay{URL: d.Info.RelayURL, Pin: d.Info.CAPin}.HTTPClient()
	hc.Jar = jar
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c := &client{t: t, base: d.Info.RelayURL, c: hc}
	_, body := c.do("GET", "/login", nil, nil)
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf on the sign-in page: %s", body)
	}
	status, _ := c.do("POST", "/login", url.Values{"csrf": {m[1]}, "email": {email}, "password": {password}}, nil)
	if status != http.StatusSeeOther {
		t.Fatalf("sign-in as %s: %d", email, status)
	}
	status, body = c.do("GET", "/sites", nil, nil)
	m = csrfRE.FindStringSubmatch(body)
	if status != 200 || m == nil {
		t.Fatalf("GET /sites after sign-in: %d %s", status, body)
	}
	c.csrf = m[1]
	return c
}

// do sends a request (a form when form is not nil) and returns the status
// and body.
func (c *client) do(method, path string, form url.Values, hdr http.Header) (int, string) {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// post sends a console form with the session's antiforgery token.
func (c *client) post(path string, form url.Values) (int, string) {
	c.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", c.csrf)
	return c.do("POST", path, form, nil)
}

// --- Chromium -----------------------------------------------------------

// Browser is a headless Chromium that records what went wrong.
type Browser struct {
	t      *testing.T
	ctx    context.Context
	base   string
	output syncbuf.Buffer

	mu       sync.Mutex
	urls     map[network.RequestID]string
	problems []string
	expected [][]string // problems the test announced: all of one entry's substrings
}

// newBrowser starts Chromium at 1280×800; it is closed when the test
// ends, and the test fails if it saw an unexpected problem.
func newBrowser(t *testing.T, base string) *Browser {
	t.Helper()
	needChromium(t)
	b := &Browser{t: t, base: base, urls: map[network.RequestID]string{}}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	allocCtx, allocCancel := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox, // tests run as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.IgnoreCertErrors, // the relay's API certificate is self-signed
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
		chromedp.CombinedOutput(&b.output),
	)
	bctx, bcancel := chromedp.NewContext(allocCtx, chromedp.WithErrorf(func(format string, args ...any) {
		fmt.Fprintf(&b.output, "chromedp: "+format+"\n", args...)
	}))
	b.ctx = bctx
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(bctx, 5*time.Second)
		chromedp.Cancel(cctx)
		ccancel()
		bcancel()
		allocCancel() // waits for Chromium to exit
		cancel()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, p := range b.problems {
			if !slices.ContainsFunc(b.expected, func(e []string) bool {
				return !slices.ContainsFunc(e, func(s string) bool { return !strings.Contains(p, s) })
			}) {
				t.Errorf("browser problem the test did not expect: %s", p)
			}
		}
	})
	b.listen(bctx)
	if err := chromedp.Run(bctx, network.Enable(), runtime.Enable(), cdplog.Enable(),
		chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("start chromium: %v\n%s", err, b.output.Tail(2000))
	}
	return b
}

// listen records the problems of every target of ctx's browser tab.
func (b *Browser) listen(ctx context.Context) {
	chromedp.ListenTarget(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			b.urls[ev.RequestID] = ev.Request.Method + " " + ev.Request.URL
		case *network.EventResponseReceived:
			if ev.Response.Status >= 400 {
				b.problems = append(b.problems, fmt.Sprintf("HTTP %d for %s", ev.Response.Status, b.urls[ev.RequestID]))
			}
		case *network.EventLoadingFailed:
			// A tab that opens from a click has loaded before its
			// listener is attached: Chromium then reports ERR_CACHE_MISS
			// for the request the listener never saw, which is not a
			// failure of the page.
			_, seen := b.urls[ev.RequestID]
			if ev.ErrorText != "net::ERR_ABORTED" && (seen || ev.ErrorText != "net::ERR_CACHE_MISS") {
				b.problems = append(b.problems, fmt.Sprintf("loading failed: %s: %s", b.urls[ev.RequestID], ev.ErrorText))
			}
		case *runtime.EventExceptionThrown:
			b.problems = append(b.problems, "uncaught exception: "+ev.ExceptionDetails.Error())
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.APITypeError || ev.Type == runtime.APITypeAssert || ev.Type == runtime.APITypeWarning {
				var args []string
				for _, a := range ev.Args {
					args = append(args, strings.Trim(string(a.Value), `"`)+a.Description)
				}
				b.problems = append(b.problems, fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " ")))
			}
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.LevelError {
				b.problems = append(b.problems, fmt.Sprintf("console %s error: %s (%s)", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		}
	})
}

// Expect announces an HTTP status the workflow causes on purpose for a
// URL (or part of one): the browser's reports of it (the response, and
// the console's "Failed to load resource" line) do not fail the test.
func (b *Browser) Expect(status int, url string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expected = append(b.expected, []string{fmt.Sprintf("HTTP %d for", status), url},
		[]string{fmt.Sprintf("status of %d", status), url})
}

// Run runs actions with a timeout, failing the test with what the browser
// saw.
func (b *Browser) Run(what string, actions ...chromedp.Action) {
	b.t.Helper()
	b.RunIn(b.ctx, what, actions...)
}

// RunIn is Run in another tab (chromedp context) of the same browser.
func (b *Browser) RunIn(ctx context.Context, what string, actions ...chromedp.Action) {
	b.t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Run(sctx, actions...); err != nil {
		b.mu.Lock()
		problems := slices.Clone(b.problems)
		b.mu.Unlock()
		b.t.Fatalf("%s: %v\nbrowser problems so far: %q\nchromium output (tail):\n%s", what, err, problems, b.output.Tail(2000))
	}
}

// SignIn signs in through the relay's sign-in page and lands on Sites.
func (b *Browser) SignIn(email, password string) {
	b.t.Helper()
	b.Run("sign in as "+email,
		chromedp.Navigate(b.base+"/"),
		chromedp.WaitVisible(`#signin`, chromedp.ByQuery),
		chromedp.SendKeys(`input[name=email]`, email, chromedp.ByQuery),
		chromedp.SendKeys(`input[name=password]`, password, chromedp.ByQuery),
		chromedp.Click(`#signin`, chromedp.ByQuery),
		chromedp.WaitVisible(`#new-site-button`, chromedp.ByQuery),
	)
}

// Text is the text of the first element matching sel.
func (b *Browser) Text(sel string) string {
	b.t.Helper()
	var s string
	b.Run("read "+sel, chromedp.WaitVisible(sel, chromedp.ByQuery), chromedp.Text(sel, &s, chromedp.ByQuery))
	return strings.TrimSpace(s)
}

// Shot saves a 1280×800 screenshot of the page as name.png.
func (b *Browser) Shot(name string) {
	b.t.Helper()
	b.ShotIn(b.ctx, name)
}

// ShotIn is Shot of another tab.
func (b *Browser) ShotIn(ctx context.Context, name string) {
	b.t.Helper()
	var png []byte
	b.RunIn(ctx, "screenshot "+name, chromedp.EmulateViewport(1280, 800), chromedp.CaptureScreenshot(&png))
	dir := b.t.TempDir()
	if v := os.Getenv("CONSOLE_SCREENSHOTS"); v != "" && v != "0" {
		dir = filepath.Join("..", "..", "docs", "console")
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatalf("save screenshot: %v", err)
	}
}

// --- targets ------------------------------------------------------------

// loopbackHost is a random address of 127.0.0.0/8, so that a test can
// listen on a camera's usual ports (80, 554) without clashing with
// anything else on the machine.
func loopbackHost(t *testing.T) string {
	t.Helper()
	for range 20 {
		var b [3]byte
		rand.Read(b[:])
		host := fmt.Sprintf("127.%d.%d.%d", 1+b[0]%250, b[1], 2+b[2]%250)
		ln, err := net.Listen("tcp", host+":80")
		if err == nil {
			ln.Close()
			return host
		}
	}
	t.Fatal("no free loopback address with port 80")
	return ""
}

// forward listens on addr and pipes every connection to target, until
// the test ends.
func forward(t *testing.T, addr, target string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				done := make(chan struct{})
				go func() {
					io.Copy(u, c)
					u.(*net.TCPConn).CloseWrite()
					close(done)
				}()
				io.Copy(c, u)
				c.Close()
				<-done
			}()
		}
	}()
}

// SetValues sets form fields by selector, as typing would leave them.
func SetValues(fields ...string) chromedp.Action {
	var js strings.Builder
	for i := 0; i+1 < len(fields); i += 2 {
		fmt.Fprintf(&js, "document.querySelector(%q).value = %q;\n", fields[i], fields[i+1])
	}
	js.WriteString("true")
	var ok bool
	return chromedp.Evaluate(js.String(), &ok)
}

// SubmitPage clicks a form's submit button and waits until the page the
// form posts to has replaced the current one. Waiting for `body` alone is
// satisfied by the old page, and reading it then reads a stale form.
func SubmitPage(sel string) chromedp.Action {
	var ok bool
	return chromedp.Tasks{
		chromedp.Evaluate(`document.documentElement.dataset.leaving = "1"; true`, &ok),
		chromedp.Click(sel, chromedp.ByQuery),
		chromedp.WaitReady(`html:not([data-leaving]) body`, chromedp.ByQuery),
	}
}
