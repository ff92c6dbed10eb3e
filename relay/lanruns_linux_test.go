package relay_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/netns"
	"github.com/nanodems/connector/internal/onvif/onviftest"
	"github.com/nanodems/connector/internal/testwait"
)

type runAnswer struct {
	ID    string `json:"id"`
	Kind  string `json:"kind"`
	State string `json:"state"`
	Error string `json:"error"`
	Done  int    `json:"done"`
	Total int    `json:"total"`
	Found []struct {
		Host         string `json:"host"`
		Ports        []int  `json:"ports"`
		Name         string `json:"name"`
		Manufacturer string `json:"manufacturer"`
		Model        string `json:"model"`
		NeedsLogin   bool   `json:"needs_login"`
		Added        bool   `json:"added"`
		AddPorts     []int  `json:"add_ports"`
	} `json:"found"`
}

// waitRun polls a run until it ends.
func waitRun(t *testing.T, d *demo.Demo, runID string) runAnswer {
	t.Helper()
	var run runAnswer
	err := testwait.Until(60*time.Second, func() error {
		if err := d.API.Do(context.Background(), "GET", "/api/sites/"+d.Info.SiteID+"/runs/"+runID, nil, &run, demo.Bearer(d.Info.Token)); err != nil {
			return err
		}
		if run.State == "running" {
			return fmt.Errorf("run %s still running (%d of %d)", runID, run.Done, run.Total)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// TestDiscoveryThroughRelay: the API asks the site's agent, whose LAN is
// a network namespace, to discover; the ONVIF cameras there are listed
// with what they say about themselves; the one added is marked added,
// and a tunnel to it reaches its web page.
func TestDiscoveryThroughRelay(t *testing.T) {
	netns.Skip(t)
	site := netns.NewSite(t, 3)
	resp, err := onviftest.Start(site.Cams.Do, "cam0", []onviftest.Device{
		{IP: netip.MustParseAddr(netns.CamIP(0)), HTTPPort: 80, UUID: "cam-a", Name: "Lobby", Hardware: "AC-100", Manufacturer: "Acme", Model: "AC-100"},
		{IP: netip.MustParseAddr(netns.CamIP(1)), HTTPPort: 8080, UUID: "cam-b", Name: "Gate", Hardware: "GX-9", NeedsLogin: true},
		{IP: netip.MustParseAddr(netns.CamIP(2)), HTTPPort: 80, MediaPort: 8080, RTSPPort: 8554, UUID: "cam-c", Name: "Yard", Hardware: "YD-1", Manufacturer: "Acme", Model: "YD-1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Close()
	d, _ := startLANDemo(t, site.Agent.Do)
	ctx := context.Background()
	tok := demo.Bearer(d.Info.Token)

	var run runAnswer
	if err := d.API.Do(ctx, "POST", "/api/sites/"+d.Info.SiteID+"/discoveries", nil, &run, tok); err != nil {
		t.Fatal(err)
	}
	if run.Kind != "discovery" || run.State != "running" {
		t.Fatalf("started %+v", run)
	}
	run = waitRun(t, d, run.ID)
	if run.State != "done" || len(run.Found) != 3 {
		t.Fatalf("run %+v", run)
	}
	a, b, yard := run.Found[0], run.Found[1], run.Found[2]
	if a.Host != netns.CamIP(0) || a.Name != "Lobby" || a.Manufacturer != "Acme" || a.Model != "AC-100" || a.NeedsLogin || a.Added || fmt.Sprint(a.AddPorts) != "[80 554]" {
		t.Errorf("camera a: %+v", a)
	}
	if b.Host != netns.CamIP(1) || b.Name != "Gate" || !b.NeedsLogin || fmt.Sprint(b.AddPorts) != "[80 554 8080]" {
		t.Errorf("camera b: %+v", b)
	}
	// Its media service on 8080 and its stream on RTSP 8554, as the
	// camera's media service told.
	if yard.Host != netns.CamIP(2) || yard.Name != "Yard" || fmt.Sprint(yard.AddPorts) != "[80 554 8080 8554]" {
		t.Errorf("camera yard: %+v", yard)
	}

	var out bulkAnswer
	body := map[string]any{"devices": []map[string]any{
		{"host": a.Host, "ports": a.AddPorts, "label": a.Name, "manufacturer": a.Manufacturer, "model": a.Model},
		{"host": yard.Host, "ports": yard.AddPorts, "label": yard.Name, "manufacturer": yard.Manufacturer, "model": yard.Model},
	}}
	if err := d.API.Do(ctx, "POST", "/api/sites/"+d.Info.SiteID+"/devices/bulk", body, &out, tok); err != nil {
		t.Fatal(err)
	}
	run = waitRun(t, d, run.ID)
	if !run.Found[0].Added || run.Found[1].Added || !run.Found[2].Added {
		t.Errorf("added markers: %+v", run.Found)
	}
	if len(out.Devices) != 2 || fmt.Sprint(out.Devices[1].Ports) != "[80 554 8080 8554]" || out.Devices[1].Handles["8554"] == "" || out.Devices[1].Handles["8080"] == "" {
		t.Errorf("added devices %+v", out.Devices)
	}
	waitAllowlist(t, d, out.Version)
	if al := d.Agent.Allowlist(); !al.Allows(netns.CamIP(2), 8554) || !al.Allows(netns.CamIP(2), 8080) {
		t.Errorf("the agent's allowlist does not hold the yard camera's media and RTSP ports")
	}
	c, err := cli.DialTunnel(ctx, operator(d), out.Devices[0].Handles["80"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: cam\r\n\r\n")
	page, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer page.Body.Close()
	var sb strings.Builder
	bufio.NewReader(page.Body).WriteTo(&sb)
	if !strings.Contains(sb.String(), "Camera Lobby") {
		t.Errorf("the camera's page through the tunnel: %q", sb.String())
	}
}

// TestProbeThroughRelay: a probe of the agent's /24 finds exactly the
// live listeners; one outside the agent's LAN fails with the reason; a
// /21 is refused before the agent is asked; every run is audited; and
// another tenant cannot read the run.
func TestProbeThroughRelay(t *testing.T) {
	netns.Skip(t)
	site := netns.NewSite(t, 4)
	for i, ports := range [][]int{{80}, {554}, {80, 443}, {}} {
		for _, p := range ports {
			var ln net.Listener
			if err := site.Cams.Do(func() (err error) {
				ln, err = net.Listen("tcp", net.JoinHostPort(netns.CamIP(i), fmt.Sprint(p)))
				return err
			}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
		}
	}
	d, _ := startLANDemo(t, site.Agent.Do)
	ctx := context.Background()
	tok := demo.Bearer(d.Info.Token)
	probes := "/api/sites/" + d.Info.SiteID + "/probes"

	if status, body := rawDo(t, d, "POST", probes, `{"range":"10.98.0.0/21"}`); status != http.StatusBadRequest || !strings.Contains(body, "at most 1024 (a /22) per request") {
		t.Errorf("a /21: %d %s", status, body)
	}
	if status, body := rawDo(t, d, "POST", probes, `{"range":"10.98.0.1","ports":[70000]}`); status != http.StatusBadRequest || !strings.Contains(body, "port 70000 is out of range") {
		t.Errorf("port 70000: %d %s", status, body)
	}

	var run runAnswer
	if err := d.API.Do(ctx, "POST", probes, map[string]any{"range": "10.98.0.1-10.98.0.20"}, &run, tok); err != nil {
		t.Fatal(err)
	}
	run = waitRun(t, d, run.ID)
	got := map[string]string{}
	for _, f := range run.Found {
		got[f.Host] = fmt.Sprint(f.AddPorts)
	}
	want := map[string]string{netns.CamIP(0): "[80]", netns.CamIP(1): "[554]", netns.CamIP(2): "[80 443]"}
	// 20 addresses: the demo's agent allows local targets, so its own
	// 10.98.0.1 is probed too (and does not answer).
	if run.State != "done" || run.Total != 20 || run.Done != 20 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("probe: %+v; found %v, want %v", run, got, want)
	}

	var outside runAnswer
	if err := d.API.Do(ctx, "POST", probes, map[string]any{"range": "192.168.77.0/30"}, &outside, tok); err != nil {
		t.Fatal(err)
	}
	outside = waitRun(t, d, outside.ID)
	if outside.State != "failed" || !strings.Contains(outside.Error, "192.168.77.1 is outside the private and link-local networks of this agent's interfaces (10.98.0.0/24)") {
		t.Errorf("outside the LAN: %+v", outside)
	}

	// A run's end is audited as its state changes: poll for it.
	wantAudit := []string{
		"lan.probe range 10.98.0.1-10.98.0.20 ports [80 443 554]",
		"lan.probe.end range 10.98.0.1-10.98.0.20: 20 of 20 addresses probed, 3 answered",
		"lan.probe.end range 192.168.77.1-192.168.77.2: 0 of 0 addresses probed, 0 answered; failed: 192.168.77.1 is outside",
	}
	err := testwait.Until(10*time.Second, func() error {
		var audit []struct {
			Action, Target, Detail string
		}
		if err := d.API.Do(ctx, "GET", "/api/audit?limit=100", nil, &audit, tok); err != nil {
			return err
		}
		var lines []string
		for _, e := range audit {
			if strings.HasPrefix(e.Action, "lan.") {
				lines = append(lines, e.Action+" "+e.Detail)
			}
		}
		joined := strings.Join(lines, "\n")
		for _, w := range wantAudit {
			if !strings.Contains(joined, w) {
				return fmt.Errorf("audit lacks %q:\n%s", w, joined)
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}

	// Another tenant, with its own site, cannot read the run.
	other := otherTenant(t, d)
	var x any
	for _, path := range []string{"/api/sites/" + other.siteID + "/runs/" + run.ID, "/api/sites/" + d.Info.SiteID + "/runs/" + run.ID} {
		err := d.API.Do(ctx, "GET", path, nil, &x, demo.Bearer(other.token))
		if re, ok := err.(*cli.RelayError); !ok || (re.Status != 403 && re.Status != 404) {
			t.Errorf("another tenant reads %s: %v", path, err)
		}
	}
}

type tenantB struct{ siteID, token string }

// otherTenant makes a second tenant with a user, a token and a site.
func otherTenant(t *testing.T, d *demo.Demo) tenantB {
	t.Helper()
	ctx := context.Background()
	admin := demo.Admin(d.Info.AdminKey)
	var ten, user, tok, site struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	for _, step := range []struct {
		path string
		body any
		out  any
	}{
		{"/api/admin/tenants", map[string]any{"name": "B"}, &ten},
		{"/api/tenants/{t}/users", map[string]any{"email": "b@b.invalid", "password": "tenant-b-password-1"}, &user},
		{"/api/users/{u}/tokens", nil, &tok},
		{"/api/tenants/{t}/sites", map[string]any{"name": "B site"}, &site},
	} {
		path := strings.NewReplacer("{t}", ten.ID, "{u}", user.ID).Replace(step.path)
		if err := d.API.Do(ctx, "POST", path, step.body, step.out, admin); err != nil {
			t.Fatal(err)
		}
	}
	return tenantB{siteID: site.ID, token: tok.Token}
}
