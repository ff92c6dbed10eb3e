package console_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"

	"github.com/nanodems/connector/agent"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/demo/camera"
	"github.com/nanodems/connector/relay"
	"github.com/nanodems/connector/relay/store"
	"github.com/nanodems/connector/rtsp/rtsptest"
)

// apiDevice is a device as GET /api/devices/{id} answers it.
type apiDevice struct {
	ID             string            `json:"id"`
	SiteID         string            `json:"site_id"`
	Host           string            `json:"host"`
	Ports          []int             `json:"ports"`
	Label          string            `json:"label"`
	HasCredentials bool              `json:"has_credentials"`
	LoopbackIP     string            `json:"loopback_ip"`
	Handles        map[string]string `json:"handles"`
}

func siteDevices(t *testing.T, d *demo.Demo, siteID string) []apiDevice {
	t.Helper()
	var page struct{ Items []apiDevice }
	api(t, d, "GET", "/api/sites/"+siteID+"/devices?limit=1000", nil, &page)
	return page.Items
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Workflow 1: Sites → + New site → the site page shows an enrollment
// command whose token enrolls a real agent.
func TestConsoleNewSite(t *testing.T) {
	d := startDemo(t)
	b := newBrowser(t, d.Info.RelayURL)
	b.SignIn(d.Info.UserEmail, d.Info.UserPassword)
	if got := b.Text(`[data-count="sites"]`); got != "1" {
		t.Errorf("Sites count %q, want 1", got)
	}
	b.Shot("sites")
	b.Run("create a site",
		chromedp.Click(`#new-site-button`, chromedp.ByQuery),
		chromedp.WaitVisible(`#site-name`, chromedp.ByQuery),
		chromedp.SendKeys(`#site-name`, "Istanbul HQ", chromedp.ByQuery),
		chromedp.Click(`#create-site`, chromedp.ByQuery),
		chromedp.WaitVisible(`#enroll-command`, chromedp.ByQuery),
	)
	if got := b.Text(`#site-name`); got != "Istanbul HQ" {
		t.Errorf("site page heading %q", got)
	}
	if got := b.Text(`#flash`); got != "Site Istanbul HQ created." {
		t.Errorf("flash %q", got)
	}
	cmd := b.Text(`#enroll-command`)
	b.Shot("site-new")

	sites, _, err := d.Relay.Store().ListSites(context.Background(), d.Info.TenantID, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(sites, func(s store.Site) bool { return s.Name == "Istanbul HQ" })
	if i < 0 {
		t.Fatalf("the store has no site Istanbul HQ: %+v", sites)
	}
	site := sites[i]

	// The command is ready to paste: its token enrolls an agent.
	f := strings.Fields(cmd)
	if len(f) < 2 || f[0] != "nanodems-agent" || f[1] != "enroll" {
		t.Fatalf("enrollment command %q", cmd)
	}
	flag := func(name string) string {
		i := slices.Index(f, name)
		if i < 0 || i+1 >= len(f) {
			t.Fatalf("enrollment command %q has no %s", cmd, name)
		}
		return f[i+1]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := agent.Enroll(ctx, agent.EnrollOptions{RelayURL: flag("--relay"), Token: flag("--token"), Pin: flag("--ca-pin"), Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("enroll with the console's command: %v", err)
	}
	agents, err := d.Relay.Store().ListAgents(ctx, site.ID)
	if err != nil || len(agents) != 1 || agents[0].ID != id.AgentID || id.SiteID != site.ID {
		t.Fatalf("agents of the new site: %+v, %v; want %s", agents, err, id.AgentID)
	}

	// Back on Sites, the new site is listed and counted.
	b.Run("sites again", chromedp.Navigate(d.Info.RelayURL+"/sites"), chromedp.WaitVisible(`#sites`, chromedp.ByQuery))
	if got := b.Text(`[data-count="sites"]`); got != "2" {
		t.Errorf("Sites count %q after creating one, want 2", got)
	}
}

// Workflow 2: the devices table; add a device with a write-only login
// (and a refused one), delete one with confirmation.
func TestConsoleDevices(t *testing.T) {
	d := startDemo(t)
	b := newBrowser(t, d.Info.RelayURL)
	b.SignIn(d.Info.UserEmail, d.Info.UserPassword)
	sitePath := "/sites/" + d.Info.SiteID
	b.Run("site page", chromedp.Navigate(d.Info.RelayURL+sitePath), chromedp.WaitVisible(`#devices`, chromedp.ByQuery))

	addDevice := func(label, host, ports, user, pass string) {
		b.Run("add device "+label,
			chromedp.Click(`#add-device-button`, chromedp.ByQuery),
			chromedp.WaitVisible(`#dev-host`, chromedp.ByQuery),
			SetValues(`#dev-label`, label, `#dev-host`, host, `#dev-ports`, ports, `#dev-manufacturer`, "Hikvision",
				`#dev-model`, "DS-2CD2143", `#dev-username`, user, `#dev-password`, pass),
			SubmitPage(`#add-device-submit`),
		)
	}

	// Refused: the reason is shown at the field, nothing is stored.
	b.Expect(400, d.Info.RelayURL+sitePath+"/devices")
	before := len(siteDevices(t, d, d.Info.SiteID))
	addDevice("Broken", "bad host/x", "80", "", "")
	if got := b.Text(`#dev-error`); got != `host "bad host/x" is not a host name or IP address` {
		t.Errorf("host refusal %q", got)
	}
	b.Shot("device-add-refused")
	b.Run("close", chromedp.Click(`#add-device [data-close]`, chromedp.ByQuery))
	addDevice("Broken", "192.0.2.9", "80, abc", "", "")
	if got := b.Text(`#dev-error`); got != `ports: "abc" is not a port number` {
		t.Errorf("ports refusal %q", got)
	}
	if n := len(siteDevices(t, d, d.Info.SiteID)); n != before {
		t.Fatalf("refused forms stored devices: %d, want %d", n, before)
	}
	b.Run("close", chromedp.Click(`#add-device [data-close]`, chromedp.ByQuery))

	addDevice("Lobby", "192.0.2.10", "80, 554, 8000", "admin", "lobby-secret-1")
	if got := b.Text(`#flash`); !strings.HasPrefix(got, "Device Lobby added; allowlist v") {
		t.Errorf("flash %q", got)
	}
	devs := siteDevices(t, d, d.Info.SiteID)
	i := slices.IndexFunc(devs, func(v apiDevice) bool { return v.Label == "Lobby" })
	if i < 0 {
		t.Fatalf("no device Lobby in %+v", devs)
	}
	dev := devs[i]
	if dev.Host != "192.0.2.10" || !slices.Equal(dev.Ports, []int{80, 554, 8000}) || !dev.HasCredentials || len(dev.Handles) != 3 {
		t.Fatalf("stored device %+v", dev)
	}
	row := `#dev-` + dev.ID
	if got := b.Text(row); !strings.Contains(got, "192.0.2.10") || !strings.Contains(got, "stored") || !strings.Contains(got, dev.LoopbackIP) {
		t.Errorf("device row %q", got)
	}
	var html string
	b.Run("page source", chromedp.OuterHTML(`html`, &html, chromedp.ByQuery))
	if strings.Contains(html, "lobby-secret-1") {
		t.Error("the page shows the device's password")
	}
	if got := b.Text(`[data-count="devices"]`); got != strconv.Itoa(before+1) {
		t.Errorf("devices count %q, want %d", got, before+1)
	}
	b.Shot("site-devices")

	// Delete, with confirmation.
	b.Run("delete Lobby",
		chromedp.Click(row+` a[data-dialog="delete-device"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#confirm-delete`, chromedp.ByQuery),
	)
	if got := b.Text(`#delete-title`); got != "Delete Lobby?" {
		t.Errorf("confirmation %q", got)
	}
	b.Shot("device-delete-confirm")
	var gone bool
	b.Run("confirm", chromedp.Evaluate(`document.getElementById("flash")?.remove(); true`, &gone),
		SubmitPage(`#confirm-delete`), chromedp.WaitVisible(`#flash`, chromedp.ByQuery))
	if got := b.Text(`#flash`); !strings.HasPrefix(got, "Device Lobby deleted") {
		t.Errorf("flash %q", got)
	}
	var rows []string
	b.Run("rows", chromedp.Evaluate(`Array.from(document.querySelectorAll("#devices tbody tr")).map(r => r.id)`, &rows))
	if slices.Contains(rows, "dev-"+dev.ID) {
		t.Error("the deleted device is still listed")
	}
	if st := apiStatus(d, "GET", "/api/devices/"+dev.ID, nil, nil); st != 404 {
		t.Errorf("GET deleted device: %d, want 404", st)
	}
}

// Workflow 3: ✏ opens the ports popup; a bad list is refused inline; Save
// bumps and pushes the allowlist and mints a handle the new port is
// reachable through at once.
func TestConsoleEditPorts(t *testing.T) {
	d := startDemo(t)
	echo2, err := demo.StartEcho("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo2.Close() })
	newPort := echo2.Addr().Port

	var dev apiDevice
	api(t, d, "GET", "/api/devices/"+d.Info.DeviceID, nil, &dev)
	var site struct {
		AllowlistVersion int64 `json:"allowlist_version"`
	}
	api(t, d, "GET", "/api/sites/"+d.Info.SiteID, nil, &site)

	b := newBrowser(t, d.Info.RelayURL)
	b.SignIn(d.Info.UserEmail, d.Info.UserPassword)
	row := "#dev-" + dev.ID
	open := func() {
		b.Run("open ✏",
			chromedp.Navigate(d.Info.RelayURL+"/sites/"+d.Info.SiteID),
			chromedp.Click(row+` a[data-dialog="edit-ports"]`, chromedp.ByQuery),
			chromedp.WaitVisible(`#edit-ports-input`, chromedp.ByQuery),
		)
	}
	open()
	var val string
	b.Run("ports value", chromedp.Value(`#edit-ports-input`, &val, chromedp.ByQuery))
	want := fmt.Sprintf("%d, %d", dev.Ports[0], dev.Ports[1])
	if val != want {
		t.Errorf("popup ports %q, want %q", val, want)
	}

	b.Expect(400, d.Info.RelayURL+"/devices/"+dev.ID+"/ports")
	b.Run("save a bad list",
		chromedp.SetValue(`#edit-ports-input`, want+", 70000", chromedp.ByQuery),
		SubmitPage(`#save-ports`),
		chromedp.WaitVisible(`#edit-ports-error`, chromedp.ByQuery),
	)
	if got := b.Text(`#edit-ports-error`); got != "port 70000 is out of range" {
		t.Errorf("inline refusal %q", got)
	}
	b.Shot("device-ports-refused")
	var after apiDevice
	api(t, d, "GET", "/api/devices/"+dev.ID, nil, &after)
	if !slices.Equal(after.Ports, dev.Ports) {
		t.Fatalf("a refused list changed the ports: %v", after.Ports)
	}

	open()
	b.Run("save",
		chromedp.SetValue(`#edit-ports-input`, want+", "+strconv.Itoa(newPort), chromedp.ByQuery),
		SubmitPage(`#save-ports`),
		chromedp.WaitVisible(`#flash`, chromedp.ByQuery),
	)
	flash := b.Text(`#flash`)
	if !strings.Contains(flash, "Ports of Demo camera saved; allowlist v") || !strings.Contains(flash, "New handles for port "+strconv.Itoa(newPort)) {
		t.Errorf("flash %q", flash)
	}
	b.Shot("device-ports-saved")
	api(t, d, "GET", "/api/devices/"+dev.ID, nil, &after)
	h := after.Handles[strconv.Itoa(newPort)]
	if !slices.Contains(after.Ports, newPort) || h == "" {
		t.Fatalf("device after Save: %+v", after)
	}
	var site2 struct {
		AllowlistVersion int64 `json:"allowlist_version"`
	}
	api(t, d, "GET", "/api/sites/"+d.Info.SiteID, nil, &site2)
	if site2.AllowlistVersion != site.AllowlistVersion+1 {
		t.Errorf("allowlist v%d after Save, want v%d", site2.AllowlistVersion, site.AllowlistVersion+1)
	}
	waitFor(t, "the agent to hold the pushed allowlist", func() bool { return d.Agent.Allowlist().Version() >= site2.AllowlistVersion })

	// The new port is usable at once, through its new handle.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.Relay.Dial(ctx, relay.Principal{TenantID: d.Info.TenantID, UserID: d.Info.UserID, Actor: "test"}, h, relay.DialOptions{})
	if err != nil {
		t.Fatalf("dial the new port's handle: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "hello new port\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "hello new port\n" {
		t.Fatalf("echo through the new handle: %q, %v", line, err)
	}
}

// Workflow 4: the port pills. HTTP opens /c/{handle}/ in a new tab
// (minting a handle when the port has none), RTSP copies a playable URL
// and says so, any other port shows its CLI address.
func TestConsoleOpenCamera(t *testing.T) {
	d := startDemo(t)
	host := loopbackHost(t)
	cam, err := camera.New(camera.Options{}).Start(host + ":80")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cam.Close() })
	rc, err := rtsptest.Start(rtsptest.Options{User: demo.CameraUser, Pass: demo.CameraPassword})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Close)
	forward(t, host+":554", rc.Addr)
	var dev apiDevice
	api(t, d, "POST", "/api/sites/"+d.Info.SiteID+"/devices", map[string]any{"host": host, "ports": []int{80, 554, 8000},
		"label": "Gate camera", "username": demo.CameraUser, "password": demo.CameraPassword}, &dev)
	waitFor(t, "the agent's allowlist", func() bool {
		var s struct {
			AllowlistVersion int64 `json:"allowlist_version"`
		}
		api(t, d, "GET", "/api/sites/"+d.Info.SiteID, nil, &s)
		return d.Agent.Allowlist().Version() >= s.AllowlistVersion
	})

	b := newBrowser(t, d.Info.RelayURL)
	b.SignIn(d.Info.UserEmail, d.Info.UserPassword)
	row := "#dev-" + dev.ID
	b.Run("site page", chromedp.Navigate(d.Info.RelayURL+"/sites/"+d.Info.SiteID), chromedp.WaitVisible(row, chromedp.ByQuery))

	// Other ports: the CLI address.
	if got, want := b.Text(row+` .pill.other[data-port="8000"]`), dev.LoopbackIP+":8000"; got != want {
		t.Errorf("port 8000 pill %q, want %q", got, want)
	}

	// HTTP: a new tab on the browser proxy, through the port's handle.
	openTab := func(sel string) (context.Context, string) {
		t.Helper()
		ch := chromedp.WaitNewTarget(b.ctx, func(i *target.Info) bool { return i.Type == "page" })
		b.Run("click "+sel, chromedp.Click(sel, chromedp.ByQuery))
		var id target.ID
		select {
		case id = <-ch:
		case <-time.After(15 * time.Second):
			t.Fatalf("%s opened no tab", sel)
		}
		tab, cancel := chromedp.NewContext(b.ctx, chromedp.WithTargetID(id))
		t.Cleanup(cancel)
		b.listen(tab)
		var loc string
		b.RunIn(tab, "camera page", chromedp.WaitVisible(`#login`, chromedp.ByQuery), chromedp.Location(&loc))
		return tab, loc
	}
	var href, tgt string
	var ok bool
	b.Run("HTTP pill", chromedp.AttributeValue(row+` a.pill[data-port="80"]`, "href", &href, &ok, chromedp.ByQuery),
		chromedp.AttributeValue(row+` a.pill[data-port="80"]`, "target", &tgt, &ok, chromedp.ByQuery))
	if href != "/c/"+dev.Handles["80"]+"/" || tgt != "_blank" {
		t.Errorf("HTTP pill href %q target %q, want /c/%s/ in _blank", href, tgt, dev.Handles["80"])
	}
	_, loc := openTab(row + ` a.pill[data-port="80"]`)
	if !strings.HasPrefix(loc, d.Info.RelayURL+"/c/"+dev.Handles["80"]+"/") {
		t.Errorf("camera tab at %s", loc)
	}

	// RTSP: the URL is copied, the page says so, and a player can open it.
	b.Run("clipboard permission", browser.GrantPermissions([]browser.PermissionType{browser.PermissionTypeClipboardReadWrite, browser.PermissionTypeClipboardSanitizedWrite}).WithOrigin(d.Info.RelayURL))
	b.Run("RTSP pill", chromedp.Click(row+` button.pill[data-port="554"]`, chromedp.ByQuery), chromedp.WaitVisible(`#toast`, chromedp.ByQuery))
	toast := b.Text(`#toast`)
	rtspURL, ok := strings.CutPrefix(toast, "Copied the RTSP URL to the clipboard: ")
	if !ok || !strings.HasPrefix(rtspURL, "rtsp://") || !strings.Contains(rtspURL, "/"+dev.Handles["554"]+"/") {
		t.Fatalf("RTSP pill says %q", toast)
	}
	var clip string
	b.Run("read clipboard", chromedp.Evaluate(`navigator.clipboard.readText()`, &clip, func(p *runtime.EvaluateParams) *runtime.EvaluateParams {
		return p.WithAwaitPromise(true)
	}))
	if clip != rtspURL {
		t.Errorf("clipboard %q, want %q", clip, rtspURL)
	}
	b.Shot("site-pills")
	if sdp := describe(t, rtspURL); !strings.Contains(sdp, "m=video") {
		t.Errorf("DESCRIBE of the copied URL: %q", sdp)
	}

	// A port without a handle: its pill mints one and opens it.
	if err := d.Relay.Store().RevokeHandle(context.Background(), dev.Handles["80"], time.Now()); err != nil {
		t.Fatal(err)
	}
	b.Run("reload", chromedp.Reload(), chromedp.WaitVisible(row+` button.pill[data-port="80"]`, chromedp.ByQuery))
	_, loc = openTab(row + ` button.pill[data-port="80"]`)
	var now apiDevice
	api(t, d, "GET", "/api/devices/"+dev.ID, nil, &now)
	minted := now.Handles["80"]
	if minted == "" || minted == dev.Handles["80"] || !strings.HasPrefix(loc, d.Info.RelayURL+"/c/"+minted+"/") {
		t.Errorf("after revoking %s: tab at %s, device handles %v", dev.Handles["80"], loc, now.Handles)
	}
}

// describe sends an RTSP DESCRIBE for u to the relay's gateway and returns
// the answer.
func describe(t *testing.T, u string) string {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", pu.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "DESCRIBE %s RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n", u)
	br := bufio.NewReader(c)
	status, _ := br.ReadString('\n')
	if !strings.HasPrefix(status, "RTSP/1.0 200") {
		t.Fatalf("DESCRIBE %s: %q", u, status)
	}
	n := 0
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := strings.CutPrefix(strings.ToLower(line), "content-length:"); ok {
			n, _ = strconv.Atoi(strings.TrimSpace(v))
		}
		if line == "\r\n" {
			break
		}
	}
	body := make([]byte, n)
	io.ReadFull(br, body)
	return string(body)
}
