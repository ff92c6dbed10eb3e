package console_test

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"

	"github.com/nanodems/connector/agent"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/netns"
	"github.com/nanodems/connector/internal/onvif/onviftest"
)

// startLANDemo is a demo whose agent looks at its LAN from the agent
// namespace of site: discovery, probes and tunnels all reach the
// cameras there, while its session to the relay stays on loopback.
func startLANDemo(t *testing.T, site *netns.Site) *demo.Demo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := demo.Start(ctx, demo.Options{DataDir: t.TempDir(), Logger: quietLogger(),
		Agent: func(c *agent.Config) { c.OnLAN = site.Agent.Do }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// Discover and add cameras (guide §6): site page → Discover → Run
// discovery → the cameras appear → tick one → + Add selected → its row
// on the site page → its HTTP pill opens the camera's page in a new tab.
func TestConsoleDiscoverAddOpen(t *testing.T) {
	netns.Skip(t)
	site := netns.NewSite(t, 2)
	resp, err := onviftest.Start(site.Cams.Do, "cam0", []onviftest.Device{
		{IP: netip.MustParseAddr(netns.CamIP(0)), HTTPPort: 80, UUID: "lobby", Name: "Lobby Cam", Hardware: "AC-100", Manufacturer: "Acme", Model: "AC-100"},
		{IP: netip.MustParseAddr(netns.CamIP(1)), HTTPPort: 8080, UUID: "gate", Name: "Gate", Hardware: "GX-9", NeedsLogin: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Close()
	d := startLANDemo(t, site)

	b := newBrowser(t, d.Info.RelayURL)
	b.SignIn(d.Info.UserEmail, d.Info.UserPassword)
	lobby, gate := `#found tr[data-host="`+netns.CamIP(0)+`"]`, `#found tr[data-host="`+netns.CamIP(1)+`"]`
	b.Run("site page → Discover → Run discovery",
		chromedp.Navigate(d.Info.RelayURL+"/sites/"+d.Info.SiteID),
		chromedp.Click(`#discover-link`, chromedp.ByQuery),
		chromedp.WaitVisible(`#run-discovery`, chromedp.ByQuery),
		chromedp.Click(`#run-discovery`, chromedp.ByQuery),
	)
	waitRunEnds(t, b)
	b.Run("both cameras listed", chromedp.WaitVisible(lobby, chromedp.ByQuery), chromedp.WaitVisible(gate, chromedp.ByQuery))
	if row := b.Text(lobby); !strings.Contains(row, "Lobby Cam") || !strings.Contains(row, "Acme") || !strings.Contains(row, "AC-100") || !strings.Contains(row, "80, 554") {
		t.Errorf("lobby row %q", row)
	}
	if row := b.Text(gate); !strings.Contains(row, "Gate") || !strings.Contains(row, "needs login") || !strings.Contains(row, "80, 554, 8080") {
		t.Errorf("gate row %q", row)
	}
	b.Shot("discover")
	var runURL string
	b.Run("tick the lobby camera, + Add selected",
		chromedp.Location(&runURL),
		chromedp.Click(lobby+` input[name="host"]`, chromedp.ByQuery),
		chromedp.Click(`#add-selected`, chromedp.ByQuery),
		chromedp.WaitVisible(`#devices`, chromedp.ByQuery),
	)
	if flash := b.Text(`.flash`); !strings.Contains(flash, "1 devices added ("+netns.CamIP(0)+")") {
		t.Errorf("flash %q", flash)
	}
	var dev apiDevice
	for _, x := range siteDevices(t, d, d.Info.SiteID) {
		if x.Host == netns.CamIP(0) {
			dev = x
		}
		if x.Host == netns.CamIP(1) {
			t.Errorf("the gate camera, not ticked, was added")
		}
	}
	if dev.ID == "" || dev.Label != "Lobby Cam" || len(dev.Handles) != 2 {
		t.Fatalf("added device %+v", dev)
	}
	waitFor(t, "the agent's allowlist", func() bool { return d.Agent.Allowlist().Allows(netns.CamIP(0), 80) })

	// The port pill opens the camera, through the agent, in its namespace.
	row := "#dev-" + dev.ID
	ch := chromedp.WaitNewTarget(b.ctx, func(i *target.Info) bool { return i.Type == "page" })
	b.Run("HTTP pill", chromedp.Click(row+` a.pill[data-port="80"]`, chromedp.ByQuery))
	var id target.ID
	select {
	case id = <-ch:
	case <-time.After(15 * time.Second):
		t.Fatal("the pill opened no tab")
	}
	tab, cancel := chromedp.NewContext(b.ctx, chromedp.WithTargetID(id))
	defer cancel()
	b.listen(tab)
	var heading string
	b.RunIn(tab, "camera page", chromedp.WaitVisible(`#camera`, chromedp.ByQuery), chromedp.Text(`#camera`, &heading, chromedp.ByQuery))
	if heading != "Camera Lobby Cam" {
		t.Errorf("camera tab shows %q", heading)
	}

	// Back on the run: the lobby camera is marked, and cannot be ticked.
	b.Run("the run again", chromedp.Navigate(runURL), chromedp.WaitVisible(lobby+` [data-added]`, chromedp.ByQuery))
	var n int
	b.Run("tickable rows", chromedp.Evaluate(`document.querySelectorAll('#found input[name="host"]').length`, &n))
	if n != 1 {
		t.Errorf("%d rows can be ticked after adding one of two", n)
	}
}

// Bulk add (guide §6): a range is probed with progress shown, what
// answered is listed, ticked, and added in one action.
func TestConsoleBulkAddRange(t *testing.T) {
	netns.Skip(t)
	site := netns.NewSite(t, 3)
	for i, ports := range [][]int{{80, 554}, {554}, {443}} {
		for _, p := range ports {
			var ln net.Listener
			if err := site.Cams.Do(func() (err error) {
				ln, err = net.Listen("tcp", net.JoinHostPort(netns.CamIP(i), strconv.Itoa(p)))
				return err
			}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
		}
	}
	d := startLANDemo(t, site)
	b := newBrowser(t, d.Info.RelayURL)
	b.SignIn(d.Info.UserEmail, d.Info.UserPassword)

	// A range beyond a /22 is refused in the form, with the reason.
	b.Expect(400, "/probe")
	b.Run("a /16", chromedp.Navigate(d.Info.RelayURL+"/sites/"+d.Info.SiteID+"/discover"),
		chromedp.SendKeys(`#probe-range`, "10.98.0.0/16", chromedp.ByQuery),
		chromedp.Click(`#run-probe`, chromedp.ByQuery),
		chromedp.WaitVisible(`#probe-error`, chromedp.ByQuery))
	if e := b.Text(`#probe-error`); !strings.Contains(e, "10.98.0.0/16 holds 65536 addresses; at most 1024 (a /22) per request") {
		t.Errorf("a /16: %q", e)
	}

	b.Run("probe 10.98.0.1-10.98.0.20",
		chromedp.Navigate(d.Info.RelayURL+"/sites/"+d.Info.SiteID+"/discover"),
		chromedp.SendKeys(`#probe-range`, "10.98.0.1-10.98.0.20", chromedp.ByQuery),
		chromedp.Click(`#run-probe`, chromedp.ByQuery))
	waitPage(t, b, "the run's page with its progress", `location.search.includes("run=") && !!document.getElementById("run-progress")`)
	var max string
	var ok bool
	b.Run("progress", chromedp.AttributeValue(`#run-progress`, "max", &max, &ok, chromedp.ByQuery))
	if max != "20" {
		t.Errorf("progress over %q addresses, want 20", max)
	}
	waitRunEnds(t, b)
	if st := b.Text(`#run-state`); st != "finished: 20 of 20 addresses probed" {
		t.Errorf("run state %q", st)
	}
	var value string
	b.Run("progress at the end", chromedp.AttributeValue(`#run-progress`, "value", &value, &ok, chromedp.ByQuery))
	if value != "20" {
		t.Errorf("progress value %q at the end, want 20", value)
	}
	var hosts []string
	b.Run("rows", chromedp.Evaluate(`Array.from(document.querySelectorAll('#found input[name="host"]:checked')).map(c => c.value)`, &hosts))
	if strings.Join(hosts, " ") != netns.CamIP(0)+" "+netns.CamIP(1)+" "+netns.CamIP(2) {
		t.Errorf("ticked rows %v", hosts)
	}
	b.Shot("bulk-add")
	b.Run("+ Add selected", chromedp.Click(`#add-selected`, chromedp.ByQuery), chromedp.WaitVisible(`#devices`, chromedp.ByQuery))
	if flash := b.Text(`.flash`); !strings.Contains(flash, "3 devices added") {
		t.Errorf("flash %q", flash)
	}
	want := map[string]string{netns.CamIP(0): "[80 554]", netns.CamIP(1): "[554]", netns.CamIP(2): "[443]"}
	got := 0
	for _, dev := range siteDevices(t, d, d.Info.SiteID) {
		if w, ok := want[dev.Host]; ok {
			got++
			if fmtInts(dev.Ports) != w {
				t.Errorf("%s: ports %v, want %s", dev.Host, dev.Ports, w)
			}
		}
	}
	if got != 3 {
		t.Errorf("%d of the 3 hosts that answered were added", got)
	}
}

func fmtInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// waitPage polls the page until cond (a JavaScript expression) holds; a
// page that is navigating in between is asked again.
func waitPage(t *testing.T, b *Browser, what, cond string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var ok bool
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		err := chromedp.Run(ctx, chromedp.Evaluate(cond, &ok))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) || b.ctx.Err() != nil {
			var html string
			if b.ctx.Err() == nil {
				hctx, hcancel := context.WithTimeout(b.ctx, 5*time.Second)
				_ = chromedp.Run(hctx, chromedp.Evaluate(`document.body.outerHTML`, &html))
				hcancel()
			}
			b.mu.Lock()
			problems := slices.Clone(b.problems)
			b.mu.Unlock()
			t.Fatalf("waiting for %s: %v (browser: %v)\npage: %.3000s\nbrowser problems so far: %q\nchromium output (tail):\n%s",
				what, err, b.ctx.Err(), html, problems, b.output.Tail(3000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitRunEnds waits until the page's run has ended, as the page's
// script refreshes it.
func waitRunEnds(t *testing.T, b *Browser) {
	t.Helper()
	waitPage(t, b, "the run's end", `["done", "failed"].includes((document.getElementById("run") || {}).dataset?.state)`)
	var state, html string
	b.Run("run section", chromedp.Evaluate(`document.getElementById("run").dataset.state`, &state),
		chromedp.Evaluate(`document.getElementById("run").outerHTML`, &html))
	if state != "done" {
		t.Fatalf("the run failed:\n%s", html)
	}
}
