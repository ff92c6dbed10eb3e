package console_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"

	"github.com/nanodems/connector/agent"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/installtest"
	"github.com/nanodems/connector/internal/netns"
	"github.com/nanodems/connector/internal/onvif/onviftest"
	"github.com/nanodems/connector/internal/syncbuf"
	"github.com/nanodems/connector/relay"
)

// Onboarding in one walk (guide §3 and §6): Sites → + New site → the site
// page's Linux installer, downloaded by the browser → run as root into a
// temporary root in a mount namespace without systemd (it downloads the
// agent from the relay, checks its sum, enrolls, writes the unit) → the
// agent it enrolled comes online on the site page → Discover → Run
// discovery → the camera, with the media service and RTSP ports it
// advertised → tick → + Add selected → its HTTP pill opens the camera.
//
// The agent runs from the state the installer wrote (its identity and
// certificate, in <root>/var/lib/nanodems-agent), in this process with
// Config.OnLAN, so that its LAN is the site's network namespace while its
// session to the relay stays on loopback: the installed binary itself,
// started in the host namespace, would not see the cameras (that it comes
// online is TestInstallerLinux's part).
func TestConsoleOnboardingWalk(t *testing.T) {
	netns.Skip(t)
	installtest.NeedMountNamespace(t)
	dl := installtest.BuildAgentDownload(t)
	lan := netns.NewSite(t, 1)
	cam := netns.CamIP(0)
	resp, err := onviftest.Start(lan.Cams.Do, "cam0", []onviftest.Device{
		{IP: netip.MustParseAddr(cam), HTTPPort: 80, MediaPort: 8080, RTSPPort: 8554, UUID: "yard", Name: "Yard Cam", Hardware: "YD-1", Manufacturer: "Acme", Model: "YD-1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := demo.Start(ctx, demo.Options{DataDir: t.TempDir(), Logger: quietLogger(), Relay: func(c *relay.Config) { c.DownloadsDir = dl }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)

	start := time.Now()
	phase := func(what string) { t.Logf("%-32s at %v", what, time.Since(start).Round(time.Millisecond)) }
	b := newBrowser(t, d.Info.RelayURL)
	downloads := allowDownloads(t, b)
	b.SignIn(d.Info.UserEmail, d.Info.UserPassword)
	var action string
	b.Run("Sites → + New site",
		chromedp.Navigate(d.Info.RelayURL+"/sites"),
		chromedp.Click(`#new-site-button`, chromedp.ByQuery),
		chromedp.WaitVisible(`#site-name`, chromedp.ByQuery),
		chromedp.SendKeys(`#site-name`, "Yard site", chromedp.ByQuery),
		chromedp.Click(`#create-site`, chromedp.ByQuery),
		chromedp.WaitVisible(`#installer-linux`, chromedp.ByQuery),
		chromedp.Evaluate(`document.getElementById("installer-linux").form.getAttribute("action")`, &action),
	)
	siteID := strings.TrimSuffix(strings.TrimPrefix(action, "/sites/"), "/installers/linux")
	if !strings.HasPrefix(siteID, "site_") || strings.Contains(siteID, "/") {
		t.Fatalf("the new site's installer form posts to %q", action)
	}
	if b.Text(`[data-count="site-agents"]`) != "0" {
		t.Errorf("a new site lists agents")
	}

	b.Run("download the Linux installer", chromedp.Click(`#installer-linux`, chromedp.ByQuery))
	name, script := downloads.next(t, 1)
	if name != "nanodems-agent-install-"+siteID+".sh" {
		t.Errorf("downloaded as %q", name)
	}
	phase("installer downloaded")
	root := t.TempDir()
	out, err := installtest.Run(t, script, root)
	if err != nil {
		t.Fatalf("installer: %v\n%s", err, out)
	}
	for _, p := range []string{installtest.Binary, installtest.UnitFile} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Fatalf("the installer did not install %s: %v\n%s", p, err, out)
		}
	}
	state := filepath.Join(root, installtest.StateDir)
	var id struct {
		AgentID string `json:"agent_id"`
		SiteID  string `json:"site_id"`
	}
	if raw, err := os.ReadFile(filepath.Join(state, "agent.json")); err != nil || json.Unmarshal(raw, &id) != nil || id.SiteID != siteID {
		t.Fatalf("installed identity %s (%v), want an agent of %s", raw, err, siteID)
	}

	phase("installer ran")
	// What the agent logs is shown when discovery does not end.
	var agentLog syncbuf.Buffer
	a, err := agent.New(agent.Config{Dir: state, OnLAN: lan.Agent.Do, Logger: slog.New(slog.NewTextHandler(&agentLog, nil))})
	if err != nil {
		t.Fatal(err)
	}
	actx, stop := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		if err := a.Run(actx); err != nil && actx.Err() == nil {
			t.Errorf("the installed agent stopped: %v", err)
		}
	}()
	t.Cleanup(func() { stop(); <-ran })

	// The site page, opened again until it lists the agent online.
	online := `#site-agent-` + id.AgentID + `[data-status="online"]`
	sitePage := d.Info.RelayURL + "/sites/" + siteID
	deadline := time.Now().Add(30 * time.Second)
	for {
		var shown bool
		b.Run("the site page", chromedp.Navigate(sitePage), chromedp.WaitVisible(`#site-name`, chromedp.ByQuery),
			chromedp.Evaluate(`!!document.querySelector('`+online+`')`, &shown))
		if shown {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the site page does not list agent %s online: %q", id.AgentID, b.Text(`#site-agents-title`))
		}
		time.Sleep(300 * time.Millisecond)
	}
	if got := b.Text(`#site-agent-` + id.AgentID); !strings.Contains(got, id.AgentID+" online") {
		t.Errorf("the site page's agent row %q", got)
	}
	b.Shot("onboarding-agent-online")

	phase("agent online on the site page")
	row := `#found tr[data-host="` + cam + `"]`
	b.Run("Discover → Run discovery",
		chromedp.Click(`#discover-link`, chromedp.ByQuery),
		chromedp.WaitVisible(`#run-discovery`, chromedp.ByQuery),
		chromedp.Click(`#run-discovery`, chromedp.ByQuery),
	)
	var search string
	for deadline := time.Now().Add(30 * time.Second); search == ""; time.Sleep(200 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		err := chromedp.Run(ctx, chromedp.Evaluate(`new URLSearchParams(location.search).get("run") || ""`, &search))
		cancel()
		if time.Now().After(deadline) {
			t.Fatalf("no run's page (%v); Chromium said:\n%s\nthe agent said:\n%s", err, b.output.Tail(4000), agentLog.Tail(4000))
		}
	}
	var run struct {
		State, Error string
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		api(t, d, "GET", "/api/sites/"+siteID+"/runs/"+search, nil, &run)
		if run.State != "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("discovery run %s still running after 30 s; the agent said:\n%s", search, agentLog.Tail(8000))
		}
	}
	waitRunEnds(t, b)
	phase("discovery ended")
	b.Run("the camera listed", chromedp.WaitVisible(row, chromedp.ByQuery))
	if text := b.Text(row); !strings.Contains(text, "Yard Cam") || !strings.Contains(text, "Acme") || !strings.Contains(text, "80, 554, 8080, 8554") {
		t.Errorf("camera row %q: want its name, maker and ports 80, 554, 8080, 8554", text)
	}
	b.Run("tick it, + Add selected",
		chromedp.Click(row+` input[name="host"]`, chromedp.ByQuery),
		chromedp.Click(`#add-selected`, chromedp.ByQuery),
		chromedp.WaitVisible(`#devices`, chromedp.ByQuery),
	)
	devs := siteDevices(t, d, siteID)
	if len(devs) != 1 || devs[0].Host != cam || fmtInts(devs[0].Ports) != "[80 554 8080 8554]" {
		t.Fatalf("site devices %+v, want the camera with ports 80 554 8080 8554", devs)
	}
	waitFor(t, "the installed agent's allowlist", func() bool { return a.Allowlist().Allows(cam, 80) })

	ch := chromedp.WaitNewTarget(b.ctx, func(i *target.Info) bool { return i.Type == "page" })
	b.Run("HTTP pill", chromedp.Click("#dev-"+devs[0].ID+` a.pill[data-port="80"]`, chromedp.ByQuery))
	var tid target.ID
	select {
	case tid = <-ch:
	case <-time.After(15 * time.Second):
		t.Fatal("the pill opened no tab")
	}
	tab, cancelTab := chromedp.NewContext(b.ctx, chromedp.WithTargetID(tid))
	defer cancelTab()
	b.listen(tab)
	var heading string
	b.RunIn(tab, "camera page", chromedp.WaitVisible(`#camera`, chromedp.ByQuery), chromedp.Text(`#camera`, &heading, chromedp.ByQuery))
	phase("camera page open")
	if heading != "Camera Yard Cam" {
		t.Errorf("camera tab shows %q", heading)
	}
}
