package agent

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/nanodems/connector/internal/netns"
	"github.com/nanodems/connector/internal/onvif/onviftest"
	"github.com/nanodems/connector/mux"
)

// lanFixture is a netns.Site and an agent that looks at its LAN from
// the site's agent namespace.
type lanFixture struct {
	agentNS, camNS *netns.NS
	a              *Agent
}

func newLANFixture(t *testing.T) *lanFixture {
	netns.Skip(t)
	site := netns.NewSite(t, 10)
	return &lanFixture{agentNS: site.Agent, camNS: site.Cams, a: &Agent{cfg: Config{OnLAN: site.Agent.Do}, log: slog.New(slog.DiscardHandler)}}
}

// run collects what a run reports.
type runLog struct {
	mu      sync.Mutex
	found   []mux.Found
	results int
	done    *mux.RunDone
	maxDone int
}

func (l *runLog) send(t mux.MsgType, v any) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch m := v.(type) {
	case mux.RunResult:
		l.results++
		l.found = append(l.found, m.Found...)
		l.maxDone = max(l.maxDone, m.Done)
	case mux.RunDone:
		l.done = &m
	}
	return nil
}

func TestDiscoverInNamespace(t *testing.T) {
	f := newLANFixture(t)
	resp, err := onviftest.Start(f.camNS.Do, "cam0", []onviftest.Device{
		{IP: netip.MustParseAddr("10.98.0.2"), HTTPPort: 80, UUID: "cam-a", Name: "Lobby Cam", Hardware: "DS-2CD", Manufacturer: "Acme", Model: "AC-100"},
		{IP: netip.MustParseAddr("10.98.0.3"), HTTPPort: 8080, UUID: "cam-b", Name: "Gate", Hardware: "GX-9", NeedsLogin: true},
		{IP: netip.MustParseAddr("10.98.0.4"), HTTPPort: 80, MediaPort: 8080, RTSPPort: 8554, UUID: "cam-c", Name: "Yard", Hardware: "YD-1", Manufacturer: "Acme", Model: "YD-1"},
		{IP: netip.MustParseAddr("10.98.0.5"), HTTPPort: 80, MediaPort: 8000, RTSPPort: 10554, NoGetServices: true, UUID: "cam-d", Name: "Dock", Hardware: "DK-1", Manufacturer: "Old", Model: "DK-1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Close()

	var l runLog
	rep := newReporter(l.send, "run-1")
	err = f.a.discover(context.Background(), mux.DiscoverRequest{RunID: "run-1", WindowMillis: 1500}, rep)
	rep.finish(err)
	if err != nil {
		t.Fatal(err)
	}
	if l.done == nil || l.done.Error != "" {
		t.Fatalf("run done: %+v", l.done)
	}
	slices.SortFunc(l.found, func(a, b mux.Found) int { return strings.Compare(a.Host, b.Host) })
	want := []mux.Found{
		// The device service's port, then the media service's and the
		// RTSP port of the first profile's stream URI.
		{Host: "10.98.0.2", Ports: []int{80, 554}, Name: "Lobby Cam", Hardware: "DS-2CD", Manufacturer: "Acme", Model: "AC-100", XAddrs: []string{"http://10.98.0.2:80/onvif/device_service"}},
		// GetServices answers without credentials, the media service
		// does not: the stream's port stays unknown.
		{Host: "10.98.0.3", Ports: []int{8080}, Name: "Gate", Hardware: "GX-9", Model: "GX-9", NeedsLogin: true, XAddrs: []string{"http://10.98.0.3:8080/onvif/device_service"}},
		{Host: "10.98.0.4", Ports: []int{80, 8080, 8554}, Name: "Yard", Hardware: "YD-1", Manufacturer: "Acme", Model: "YD-1", XAddrs: []string{"http://10.98.0.4:80/onvif/device_service"}},
		// A device without GetServices names its media service in
		// GetCapabilities.
		{Host: "10.98.0.5", Ports: []int{80, 8000, 10554}, Name: "Dock", Hardware: "DK-1", Manufacturer: "Old", Model: "DK-1", XAddrs: []string{"http://10.98.0.5:80/onvif/device_service"}},
	}
	if len(l.found) != len(want) {
		t.Fatalf("found %+v, want %+v", l.found, want)
	}
	for i := range want {
		g, w := l.found[i], want[i]
		if g.Host != w.Host || !slices.Equal(g.Ports, w.Ports) || g.Name != w.Name || g.Hardware != w.Hardware ||
			g.Manufacturer != w.Manufacturer || g.Model != w.Model || g.NeedsLogin != w.NeedsLogin || !slices.Equal(g.XAddrs, w.XAddrs) {
			t.Errorf("found %+v, want %+v", g, w)
		}
	}
	if resp.Probes() == 0 {
		t.Error("the responder saw no Probe")
	}
}

func TestDiscoverWithoutLANInterface(t *testing.T) {
	netns.Skip(t)
	ns := netns.New(t) // only lo: nothing to discover on
	a := &Agent{cfg: Config{OnLAN: ns.Do}, log: slog.New(slog.DiscardHandler)}
	var l runLog
	rep := newReporter(l.send, "r")
	err := a.discover(context.Background(), mux.DiscoverRequest{RunID: "r", WindowMillis: 100}, rep)
	rep.finish(err)
	if err == nil || !strings.Contains(err.Error(), "no up, multicast-capable interface") || l.done == nil || l.done.Error == "" {
		t.Fatalf("err %v, done %+v", err, l.done)
	}
}

// TestProbeInNamespace probes a /24 that holds 10 live hosts: exactly
// those answer, with exactly their open ports, and no packet leaves the
// LAN (the exit link's counters do not move).
func TestProbeInNamespace(t *testing.T) {
	f := newLANFixture(t)
	want := map[string][]int{}
	for i := 2; i <= 11; i++ {
		host := "10.98.0." + strconv.Itoa(i)
		ports := [][]int{{80}, {554}, {80, 554}, {443}, {80, 443, 554}}[i%5]
		for _, p := range ports {
			var ln net.Listener
			err := f.camNS.Do(func() error {
				var err error
				ln, err = net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
		}
		want[host] = ports
	}
	// A listener on a port not probed is not found.
	f.camNS.Do(func() error {
		ln, err := net.Listen("tcp", "10.98.0.2:8000")
		if err == nil {
			t.Cleanup(func() { ln.Close() })
		}
		return err
	})

	exitTX, _ := f.agentNS.Packets(t, "exit0")
	var l runLog
	rep := newReporter(l.send, "p")
	err := f.a.probe(context.Background(), mux.ProbeRequest{RunID: "p", Range: "10.98.0.0/24", TimeoutMillis: 1000}, rep)
	rep.finish(err)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]int{}
	for _, fd := range l.found {
		if _, dup := got[fd.Host]; dup {
			t.Errorf("%s reported twice", fd.Host)
		}
		got[fd.Host] = fd.Ports
	}
	if len(got) != len(want) {
		t.Errorf("found %v, want %v", got, want)
	}
	for h, ps := range want {
		slices.Sort(ps)
		if !slices.Equal(got[h], ps) {
			t.Errorf("%s: open ports %v, want %v", h, got[h], ps)
		}
	}
	// 254 hosts minus the agent's own 10.98.0.1.
	if l.done == nil || l.done.Error != "" || l.done.Done != 253 || l.done.Total != 253 {
		t.Errorf("run done %+v, want 253 of 253", l.done)
	}
	if tx, _ := f.agentNS.Packets(t, "exit0"); tx != exitTX {
		t.Errorf("%d packets left by the exit link during the probe", tx-exitTX)
	}
}

// TestProbeRefusesOutsideLAN: a range outside the private and link-local
// networks of the agent's interfaces, or one that only partly lies in
// them, is refused before any packet is sent.
func TestProbeRefusesOutsideLAN(t *testing.T) {
	f := newLANFixture(t)
	exitTX, _ := f.agentNS.Packets(t, "exit0")
	lanTX, _ := f.agentNS.Packets(t, "lan0")
	for rng, want := range map[string]string{
		"192.0.2.0/28":          "192.0.2.1 is outside the private and link-local networks of this agent's interfaces (10.98.0.0/24)",
		"10.98.0.250-10.98.1.5": "10.98.1.0 is outside",
		"8.8.8.8":               "8.8.8.8 is outside",
		"10.0.0.0/16":           "at most 1024 (a /22) per request",
		"10.98.0.0/24 and more": "is not a CIDR",
		"2001:db8::1":           "only IPv4",
	} {
		var l runLog
		rep := newReporter(l.send, "p")
		err := f.a.probe(context.Background(), mux.ProbeRequest{RunID: "p", Range: rng, TimeoutMillis: 100}, rep)
		rep.finish(err)
		if err == nil || !strings.Contains(err.Error(), want) || l.done == nil || l.done.Error != err.Error() {
			t.Errorf("probe %s: %v (done %+v), want an error with %q", rng, err, l.done, want)
		}
	}
	exit, _ := f.agentNS.Packets(t, "exit0")
	lan, _ := f.agentNS.Packets(t, "lan0")
	if exit != exitTX || lan != lanTX {
		t.Errorf("refused probes sent packets: exit0 %d, lan0 %d", exit-exitTX, lan-lanTX)
	}
}
