package relay_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/nanodems/connector/demo/camera"
	"github.com/nanodems/connector/internal/syncbuf"
	"github.com/nanodems/connector/internal/testwait"
)

const chromiumPath = "/usr/bin/chromium"

// browserLog records what a real browser saw go wrong while it used the
// proxy: HTTP errors, failed loads, WebSocket failures, blocked cookies,
// console errors and uncaught exceptions.
type browserLog struct {
	mu       sync.Mutex
	urls     map[network.RequestID]string
	problems []string // any of these fails the test
	aborted  []string // net::ERR_ABORTED: navigating away, closing the MJPEG <img>
}

func (b *browserLog) add(format string, args ...any) {
	b.problems = append(b.problems, fmt.Sprintf(format, args...))
}

// listen is the chromedp.ListenTarget callback. It runs on chromedp's event
// loop, so it only records.
func (b *browserLog) listen(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		b.urls[ev.RequestID] = ev.Request.Method + " " + ev.Request.URL
	case *network.EventWebSocketCreated:
		b.urls[ev.RequestID] = "WebSocket " + ev.URL
	case *network.EventResponseReceived:
		if ev.Response.Status >= 400 {
			b.add("HTTP %d %s for %s %s", ev.Response.Status, ev.Response.StatusText, ev.Type, b.urls[ev.RequestID])
		}
	case *network.EventLoadingFailed:
		msg := fmt.Sprintf("%s %s: %s (canceled %v, blocked %q)", ev.Type, b.urls[ev.RequestID], ev.ErrorText, ev.Canceled, ev.BlockedReason)
		if ev.ErrorText == "net::ERR_ABORTED" {
			b.aborted = append(b.aborted, msg)
		} else {
			b.problems = append(b.problems, "loading failed: "+msg)
		}
	case *network.EventWebSocketHandshakeResponseReceived:
		if ev.Response.Status != 101 {
			b.add("WebSocket handshake %s: %d %s", b.urls[ev.RequestID], ev.Response.Status, ev.Response.StatusText)
		}
	case *network.EventWebSocketFrameError:
		b.add("WebSocket frame error %s: %s", b.urls[ev.RequestID], ev.ErrorMessage)
	case *network.EventResponseReceivedExtraInfo:
		for _, bc := range ev.BlockedCookies {
			b.add("cookie blocked %v: %s", bc.BlockedReasons, bc.CookieLine)
		}
	case *runtime.EventExceptionThrown:
		b.add("uncaught exception: %s", ev.ExceptionDetails.Error())
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.APITypeError || ev.Type == runtime.APITypeAssert {
			var args []string
			for _, a := range ev.Args {
				args = append(args, strings.Trim(string(a.Value), `"`)+a.Description)
			}
			b.add("console.%s: %s", ev.Type, strings.Join(args, " "))
		}
	case *cdplog.EventEntryAdded:
		if ev.Entry.Level == cdplog.LevelError {
			b.add("console %s error: %s (%s)", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
		}
	}
}

func (b *browserLog) snapshot() (problems, aborted []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.problems), slices.Clone(b.aborted)
}

// camState mirrors window.camState of the camera's main.js.
type camState struct {
	Model     string   `json:"model"`
	WSEchoes  []string `json:"wsEchoes"`
	LiveLoads int      `json:"liveLoads"`
	Upload    any      `json:"upload"`
	Errors    []string `json:"errors"`
	AppLoaded bool     `json:"appLoaded"`
}

// TestChromiumCameraUI drives the stand-in camera's web UI through the
// relay's /c/{handle}/ proxy in a real headless Chromium: relay sign-in,
// the camera's own login form, script-built fetches with a Digest challenge
// the relay answers, a WebSocket, an MJPEG <img> and a 5 MiB upload, with
// every absolute path the camera uses. Nothing the browser does may fail.
func TestChromiumCameraUI(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if ci := os.Getenv("CI"); ci == "" || ci == "false" || ci == "0" {
			t.Skipf("%s not installed (CI installs it in .ci/run): %v", chromiumPath, err)
		}
		t.Fatalf("CI=%s but %s is missing: .ci/run must install chromium: %v", os.Getenv("CI"), chromiumPath, err)
	}
	d := startDemo(t)
	cam, _, h, _ := camDevice(t, d, camera.Options{Username: camUser, Password: camPass}, true)
	base := d.Info.RelayURL
	prefix := "/c/" + h

	// Everything in the browser, teardown included, stays within 40 s.
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	var output syncbuf.Buffer
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
		chromedp.WindowSize(1024, 900),
		chromedp.CombinedOutput(&output),
	)
	defer allocCancel() // waits for Chromium to exit
	// chromedp's own complaints (e.g. events newer than its protocol
	// definitions) go with Chromium's output into the failure message, not
	// to t.Logf, which must not be called once the test has returned.
	bctx, bcancel := chromedp.NewContext(allocCtx, chromedp.WithErrorf(func(format string, args ...any) {
		fmt.Fprintf(&output, "chromedp: "+format+"\n", args...)
	}))
	defer bcancel()
	closeBrowser := sync.OnceFunc(func() {
		cctx, ccancel := context.WithTimeout(bctx, 5*time.Second)
		defer ccancel()
		if err := chromedp.Cancel(cctx); err != nil {
			t.Logf("closing chromium: %v", err)
		}
	})
	defer closeBrowser()

	blog := &browserLog{urls: map[network.RequestID]string{}}
	chromedp.ListenTarget(bctx, blog.listen)
	run := func(what string, timeout time.Duration, actions ...chromedp.Action) {
		t.Helper()
		sctx, scancel := context.WithTimeout(bctx, timeout)
		defer scancel()
		if err := chromedp.Run(sctx, actions...); err != nil {
			problems, _ := blog.snapshot()
			t.Fatalf("%s: %v\nbrowser problems so far: %q\nchromium output (tail):\n%s", what, err, problems, output.Tail(2000))
		}
	}
	// The first Run starts Chromium, on bctx itself: a browser started on a
	// shorter-lived child context would die with it. Enabling the domains
	// before the first navigation means no event is missed.
	if err := chromedp.Run(bctx, network.Enable(), runtime.Enable(), cdplog.Enable()); err != nil {
		t.Fatalf("start chromium: %v\nchromium output (tail):\n%s", err, output.Tail(2000))
	}

	// Not signed in: the proxy sends the browser to the relay's sign-in.
	var loc string
	run("open the camera", 10*time.Second,
		chromedp.Navigate(base+prefix+"/"),
		chromedp.WaitVisible(`input[name=email]`, chromedp.ByQuery),
		chromedp.Location(&loc),
	)
	if want := base + "/login?next=%2Fc%2F" + h + "%2F"; loc != want {
		t.Fatalf("anonymous visit landed on %s, want the sign-in page %s", loc, want)
	}
	run("relay sign-in", 10*time.Second,
		chromedp.SendKeys(`input[name=email]`, "operator@demo.invalid", chromedp.ByQuery),
		chromedp.SendKeys(`input[name=password]`, d.Info.UserPassword, chromedp.ByQuery),
		chromedp.Click(`#signin`, chromedp.ByQuery),
		// Back to the camera, which redirects to its login page.
		chromedp.WaitVisible(`form#login input[name=user]`, chromedp.ByQuery),
		chromedp.Location(&loc),
	)
	if want := base + prefix + "/doc/page/login.asp"; loc != want {
		t.Fatalf("after sign-in landed on %s, want %s", loc, want)
	}

	// The camera's own login: its form posts to /ISAPI/Security/sessionLogin,
	// outside the prefix, and redirects to /doc/page/main.asp.
	run("camera login", 10*time.Second,
		chromedp.SendKeys(`form#login input[name=user]`, camUser, chromedp.ByQuery),
		chromedp.SendKeys(`form#login input[name=pass]`, camPass, chromedp.ByQuery),
		chromedp.Click(`form#login button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#live`, chromedp.ByQuery),
		chromedp.Location(&loc),
	)
	if want := base + prefix + "/doc/page/main.asp"; loc != want {
		t.Fatalf("after camera login landed on %s, want %s", loc, want)
	}

	// main.js: deviceInfo (Digest, answered by the relay), WebSocket
	// echoes, MJPEG frames.
	wantEchoes := []string{"ping-1", "ping-2", "ping-3"}
	var st camState
	uiUp := func() bool {
		return st.Model == camera.Model && slices.Equal(st.WSEchoes, wantEchoes) && cam.MJPEGFrames() >= 3
	}
	// Polling stops at the first error the page reports; uiUp decides.
	_ = testwait.Until(10*time.Second, func() error {
		run("read window.camState", 5*time.Second, chromedp.Evaluate(`window.camState`, &st))
		if uiUp() || len(st.Errors) > 0 {
			return nil
		}
		return errors.New("camera UI not up")
	})
	if !uiUp() {
		problems, _ := blog.snapshot()
		t.Fatalf("camera UI did not come up: camState %+v, MJPEG frames sent %d, want model %q and echoes %q and >= 3 frames\nbrowser problems: %q\ncamera 404s: %q",
			st, cam.MJPEGFrames(), camera.Model, wantEchoes, problems, cam.NotFound())
	}
	if !st.AppLoaded {
		t.Errorf("app.js did not run: camState %+v", st)
	}

	// A 5 MiB upload from the page's own JavaScript: fetch to
	// /ISAPI/System/updateFirmware outside the prefix, a 307 back into it
	// that the browser follows with the body.
	const size = 5 * 1024 * 1024
	hash := sha256.New()
	io.Copy(hash, camera.UploadPattern(size))
	want := hex.EncodeToString(hash.Sum(nil))
	var up struct {
		Bytes  int64  `json:"bytes"`
		SHA256 string `json:"sha256"`
	}
	run("upload 5 MiB", 15*time.Second, chromedp.Evaluate(fmt.Sprintf(`window.upload(%d)`, size), &up,
		func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	if up.Bytes != size || up.SHA256 != want {
		t.Errorf("camera answered the upload with %d bytes sha256 %s, want %d %s", up.Bytes, up.SHA256, size, want)
	}
	if ups := cam.Uploads(); len(ups) != 1 || ups[0].Bytes != size || hex.EncodeToString(ups[0].SHA256[:]) != want {
		t.Errorf("camera recorded uploads %+v, want one of %d bytes", ups, size)
	}

	// The main page, for a person to look at.
	var png []byte
	run("screenshot", 10*time.Second,
		chromedp.WaitVisible(`#upload`, chromedp.ByQuery),
		chromedp.FullScreenshot(&png, 100),
		chromedp.Evaluate(`window.camState`, &st),
	)
	shot := filepath.Join(t.TempDir(), "camera.png")
	must(t, os.WriteFile(shot, png, 0o644))
	if err := os.WriteFile("/tmp/camera-ui.png", png, 0o644); err != nil {
		t.Logf("copy screenshot: %v", err)
	} else {
		t.Logf("screenshot of the main page: /tmp/camera-ui.png (%d bytes)", len(png))
	}
	if len(st.Errors) > 0 {
		t.Errorf("camera UI recorded errors: %q", st.Errors)
	}

	// Leave the page (ending the MJPEG stream and the WebSocket), then close
	// the browser, before reading the record.
	run("leave the page", 5*time.Second, chromedp.Navigate("about:blank"))
	closeBrowser()
	problems, aborted := blog.snapshot()
	for _, p := range problems {
		t.Errorf("browser: %s", p)
	}
	if len(aborted) > 0 {
		t.Logf("aborted loads (navigation or teardown, not failures): %q", aborted)
	}
	if nf := cam.NotFound(); len(nf) > 0 {
		t.Errorf("camera answered 404 for %q", nf)
	}
	for _, r := range cam.Requests() {
		if strings.Contains(r, "nd_session") {
			t.Errorf("relay session leaked to camera: %s", r)
		}
	}
}
