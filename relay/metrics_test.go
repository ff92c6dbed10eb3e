package relay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/nanodems/connector/agent"
	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/metrics"
	"github.com/nanodems/connector/internal/testwait"
	"github.com/nanodems/connector/mux"
	"github.com/nanodems/connector/relay"
	"github.com/nanodems/connector/relay/store"
	"github.com/nanodems/connector/rtsp/rtsptest"
)

// series is one scrape of /metrics, parsed with the Prometheus text
// parser.
type series map[string]*dto.MetricFamily

func scrapeMetrics(t *testing.T, addr string) series {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	must(t, err)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return series(fams)
}

// value is the sample of family name whose labels are those given
// (name=value pairs; the sample may have no others). A histogram's value
// is its count. A missing series fails the test.
func (s series) value(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	f := s[name]
	if f == nil {
		t.Fatalf("no series %s in /metrics", name)
	}
next:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels)/2 {
			continue
		}
		for _, lp := range m.GetLabel() {
			found := false
			for i := 0; i+1 < len(labels); i += 2 {
				if labels[i] == lp.GetName() && labels[i+1] == lp.GetValue() {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("no sample of %s with labels %v", name, labels)
	return 0
}

// startMetricsDemo is a demo whose relay and agent both serve /metrics
// on loopback; it returns the agent's metrics address too.
func startMetricsDemo(t *testing.T) (*demo.Demo, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := demo.Start(ctx, demo.Options{
		DataDir: t.TempDir(), Logger: quietLogger(),
		Relay: func(c *relay.Config) { c.MetricsAddr = "127.0.0.1:0" },
		Agent: func(c *agent.Config) { c.MetricsAddr = "127.0.0.1:0" },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	testwait.For(t, 10*time.Second, "the agent's metrics listener", func() bool { return d.Agent.MetricsAddr() != "" })
	return d, d.Agent.MetricsAddr()
}

// After a known transfer (an exact byte count each way), a refused
// tunnel, a tunnel denied by the access check and one browser proxy
// request, the relay's and the agent's series have moved by exactly that.
func TestMetricsMoveByKnownAmounts(t *testing.T) {
	d, agentAddr := startMetricsDemo(t)
	ctx := context.Background()
	op := operator(d)
	relayAddr := d.Relay.MetricsAddr()
	// A closed port, registered before the first scrape: adding it
	// changes nothing the scrapes compare. And a handle the relay routes
	// but the agent's allowlist lacks (what a compromised relay would ask
	// for).
	refusedHandle := addDevice(t, d, closedLoopbackPort(t))
	notAllowed := "h-" + strings.Repeat("M", 21) + "A"
	must(t, d.Relay.Store().InsertHandle(ctx, store.Handle{Handle: notAllowed, TenantID: d.Info.TenantID, DeviceID: d.Info.DeviceID, Port: 9, CreatedAt: time.Now()}))

	r0, a0 := scrapeMetrics(t, relayAddr), scrapeMetrics(t, agentAddr)
	if n := r0.value(t, "connector_agents_online"); n != 1 {
		t.Errorf("connector_agents_online = %v, want 1", n)
	}
	if up := r0.value(t, "connector_db_up"); up != 1 {
		t.Errorf("connector_db_up = %v, want 1", up)
	}
	if r0.value(t, "connector_store_latency_seconds", "op", "read") == 0 || r0.value(t, "connector_store_latency_seconds", "op", "write") == 0 {
		t.Error("the store latency histogram saw no reads or no writes after provisioning")
	}

	// The transfer: n bytes to the echo target and n back.
	const n = 3<<20 + 12345
	c, err := cli.DialTunnel(ctx, op, d.Info.EchoHandle)
	must(t, err)
	must(t, roundTrip(c, n))
	c.Close()
	testwait.For(t, 10*time.Second, "the tunnel to close at the relay and the agent", func() bool {
		r, a := scrapeMetrics(t, relayAddr), scrapeMetrics(t, agentAddr)
		return r.value(t, "connector_tunnels_open", "path", "ws") == 0 && a.value(t, "connector_agent_tunnels_active") == 0
	})

	// The refused tunnel, one the allowlist refuses, and two denied by
	// the access check.
	wantRefusal(t, op, refusedHandle, 502, "connection refused")
	wantRefusal(t, op, notAllowed, 403, "target not in allowlist")
	wantRefusal(t, op, "h-AAAAAAAAAAAAAAAAAAAAAA", 404, "unknown or revoked handle")
	otherTenant := otherTenantRelay(t, d)
	wantRefusal(t, otherTenant, d.Info.EchoHandle, 403, "handle does not belong to your tenant")

	// One browser proxy request, with the API credential.
	resp, _ := get(t, browser(t, d), d.Info.RelayURL+"/c/"+d.Info.HTTPHandle+"/", "Authorization", "Bearer "+d.Info.Token)
	if resp.StatusCode >= 400 {
		t.Fatalf("GET /c/{handle}/: %s", resp.Status)
	}
	class := fmt.Sprintf("%dxx", resp.StatusCode/100)

	r1, a1 := scrapeMetrics(t, relayAddr), scrapeMetrics(t, agentAddr)
	delta := func(s0, s1 series, name string, labels ...string) float64 {
		t.Helper()
		return s1.value(t, name, labels...) - s0.value(t, name, labels...)
	}
	for _, w := range []struct {
		s0, s1 series
		name   string
		labels []string
		want   float64
	}{
		{r0, r1, "connector_tunnels_opened_total", []string{"path", "ws", "result", "ok"}, 1},
		{r0, r1, "connector_tunnels_opened_total", []string{"path", "ws", "result", "refused"}, 1},
		{r0, r1, "connector_tunnels_opened_total", []string{"path", "ws", "result", "unreachable"}, 0},
		{r0, r1, "connector_tunnels_opened_total", []string{"path", "ws", "result", "not_allowed"}, 1},
		{r0, r1, "connector_tunnels_opened_total", []string{"path", "ws", "result", "offline"}, 0},
		{r0, r1, "connector_tunnels_denied_total", []string{"path", "ws"}, 2},
		{r0, r1, "connector_tunnel_bytes_total", []string{"path", "ws", "direction", "to_device"}, n},
		{r0, r1, "connector_tunnel_bytes_total", []string{"path", "ws", "direction", "from_device"}, n},
		{r0, r1, "connector_tunnels_open", []string{"path", "ws"}, 0},
		{r0, r1, "connector_web_requests_total", []string{"class", class}, 1},
		{r0, r1, "connector_web_requests_total", []string{"class", "5xx"}, 0},
		{r0, r1, "connector_tunnels_opened_total", []string{"path", "cli", "result", "ok"}, 0},
		{a0, a1, "connector_agent_tunnels_opened_total", []string{"result", "refused"}, 1},
		{a0, a1, "connector_agent_tunnels_opened_total", []string{"result", "not_allowed"}, 1},
		{a0, a1, "connector_agent_tunnels_opened_total", []string{"result", "unreachable"}, 0},
	} {
		if got := delta(w.s0, w.s1, w.name, w.labels...); got != w.want {
			t.Errorf("%s%v moved by %v, want %v", w.name, w.labels, got, w.want)
		}
	}
	// The browser proxy's request opened its tunnel (or reused one its
	// scheme probe opened): at least one web open, and the agent answered
	// the echo tunnel and every web one with ok.
	webOK := delta(r0, r1, "connector_tunnels_opened_total", "path", "web", "result", "ok")
	if webOK < 1 {
		t.Errorf("connector_tunnels_opened_total{path=web,result=ok} moved by %v, want at least 1", webOK)
	}
	// The agent carried the echo's bytes and the browser proxy's, each
	// exactly as the relay counted them.
	for _, dir := range []string{"to_device", "from_device"} {
		want := n + delta(r0, r1, "connector_tunnel_bytes_total", "path", "web", "direction", dir)
		if got := delta(a0, a1, "connector_agent_tunnel_bytes_total", "direction", dir); got != want {
			t.Errorf("connector_agent_tunnel_bytes_total{direction=%s} moved by %v, want %v", dir, got, want)
		}
	}
	if got := delta(a0, a1, "connector_agent_tunnels_opened_total", "result", "ok"); got != 1+webOK {
		t.Errorf("connector_agent_tunnels_opened_total{result=ok} moved by %v, want %v", got, 1+webOK)
	}

	// With the agent gone, an open finds no agent: offline.
	must(t, d.API.Do(ctx, "POST", "/api/agents/"+d.Info.AgentID+"/revoke", nil, nil, demo.Admin(d.Info.AdminKey)))
	testwait.For(t, 10*time.Second, "the revoked agent to go offline", func() bool {
		return scrapeMetrics(t, relayAddr).value(t, "connector_agents_online") == 0
	})
	wantRefusal(t, op, d.Info.EchoHandle, 503, "agent reconnecting")
	if got := delta(r1, scrapeMetrics(t, relayAddr), "connector_tunnels_opened_total", "path", "ws", "result", "offline"); got != 1 {
		t.Errorf("connector_tunnels_opened_total{path=ws,result=offline} moved by %v, want 1", got)
	}
}

// closedLoopbackPort is a port of 127.0.0.1 nothing listens on.
func closedLoopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// otherTenantRelay is the relay as a user of a second tenant sees it.
func otherTenantRelay(t *testing.T, d *demo.Demo) cli.Relay {
	t.Helper()
	ctx, admin := context.Background(), demo.Admin(d.Info.AdminKey)
	var ten, usr, tok struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	must(t, d.API.Do(ctx, "POST", "/api/admin/tenants", map[string]string{"name": "Other"}, &ten, admin))
	must(t, d.API.Do(ctx, "POST", "/api/tenants/"+ten.ID+"/users", map[string]string{"email": "m@other.invalid", "password": "another-password"}, &usr, admin))
	must(t, d.API.Do(ctx, "POST", "/api/users/"+usr.ID+"/tokens", nil, &tok, admin))
	return cli.Relay{URL: d.Info.RelayURL, Pin: d.Info.CAPin, Token: tok.Token}
}

// The series live on their own listener only: the API listener, which
// every tenant's users reach, serves no /metrics, and no series carries a
// handle, device, site or tenant label. The relay and the agent serve
// every series docs/metrics.md lists, and no connector_ series it does
// not.
func TestMetricsOnlyOnTheirListener(t *testing.T) {
	d, agentAddr := startMetricsDemo(t)
	docRelay, docAgent := documentedSeries(t)
	for who, w := range map[string]struct {
		addr string
		doc  map[string]bool
	}{"relay": {d.Relay.MetricsAddr(), docRelay}, "agent": {agentAddr, docAgent}} {
		got := scrapeMetrics(t, w.addr)
		for name := range w.doc {
			if got[name] == nil {
				t.Errorf("%s: docs/metrics.md lists %s, /metrics has no such series", who, name)
			}
		}
		for name := range got {
			if strings.HasPrefix(name, "connector_") && !w.doc[name] {
				t.Errorf("%s: /metrics has %s, docs/metrics.md does not list it", who, name)
			}
		}
		for _, want := range []string{"go_goroutines", "process_resident_memory_bytes"} {
			if got[want] == nil {
				t.Errorf("%s: no runtime series %s", who, want)
			}
		}
	}
	resp, body := get(t, browser(t, d), d.Info.RelayURL+"/metrics", "Authorization", "Bearer "+d.Info.Token)
	if resp.StatusCode == http.StatusOK || strings.Contains(body, "connector_") {
		t.Fatalf("the API listener answered /metrics: %s\n%.200s", resp.Status, body)
	}
	c, err := cli.DialTunnel(context.Background(), operator(d), d.Info.EchoHandle)
	must(t, err)
	must(t, roundTrip(c, 1000))
	c.Close()
	for name, f := range scrapeMetrics(t, d.Relay.MetricsAddr()) {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "handle", "device", "device_id", "site", "site_id", "agent", "agent_id", "tenant", "tenant_id", "user":
					t.Errorf("%s has a %s label: cardinality grows with the installation", name, l.GetName())
				}
				if strings.Contains(l.GetValue(), d.Info.EchoHandle) {
					t.Errorf("%s carries the handle %s in label %s", name, d.Info.EchoHandle, l.GetName())
				}
			}
		}
	}
}

// gathered is s's series read straight from its registry.
func gathered(t *testing.T, s *relay.Server) series {
	t.Helper()
	fams, err := relay.MetricsRegistry(s).Gather()
	must(t, err)
	out := series{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

// A tunnel opened on a relay that does not hold the agent is counted there
// under its access path and on the holding relay under path "bridge",
// each with the exact bytes; both relays count the BridgeTunnel stream in
// the connector_interrelay_* series.
func TestMetricsAcrossTheBridge(t *testing.T) {
	f := startFleet(t, 2)
	r1, r2 := f.relays[0], f.relays[1] // the demo's agent is on r1
	via2 := f.via(t, r2)
	a0, b0 := gathered(t, r1), gathered(t, r2)

	const n = 1<<20 + 333
	c, err := cli.DialTunnel(context.Background(), operator(via2), f.d.Info.EchoHandle)
	must(t, err)
	must(t, roundTrip(c, n))
	c.Close()
	testwait.For(t, 10*time.Second, "the bridge to end on both relays", func() bool {
		return gathered(t, r1).value(t, "connector_interrelay_bridges_open") == 0 && gathered(t, r2).value(t, "connector_interrelay_bridges_open") == 0
	})

	a1, b1 := gathered(t, r1), gathered(t, r2)
	for _, w := range []struct {
		relay  string
		s0, s1 series
		name   string
		labels []string
		want   float64
	}{
		{"r2", b0, b1, "connector_tunnels_opened_total", []string{"path", "ws", "result", "ok"}, 1},
		{"r2", b0, b1, "connector_tunnel_bytes_total", []string{"path", "ws", "direction", "to_device"}, n},
		{"r2", b0, b1, "connector_tunnel_bytes_total", []string{"path", "ws", "direction", "from_device"}, n},
		{"r2", b0, b1, "connector_interrelay_bridge_opens_total", nil, 1},
		{"r2", b0, b1, "connector_interrelay_bridge_bytes_total", nil, 2 * n},
		{"r2", b0, b1, "connector_interrelay_bridge_failures_total", nil, 0},
		{"r1", a0, a1, "connector_tunnels_opened_total", []string{"path", "bridge", "result", "ok"}, 1},
		{"r1", a0, a1, "connector_tunnels_opened_total", []string{"path", "ws", "result", "ok"}, 0},
		{"r1", a0, a1, "connector_tunnel_bytes_total", []string{"path", "bridge", "direction", "to_device"}, n},
		{"r1", a0, a1, "connector_tunnel_bytes_total", []string{"path", "bridge", "direction", "from_device"}, n},
		{"r1", a0, a1, "connector_interrelay_bridge_opens_total", nil, 1},
		{"r1", a0, a1, "connector_interrelay_bridge_bytes_total", nil, 2 * n},
		{"r1", a0, a1, "connector_tunnels_open", []string{"path", "bridge"}, 0},
	} {
		if got := w.s1.value(t, w.name, w.labels...) - w.s0.value(t, w.name, w.labels...); got != w.want {
			t.Errorf("%s: %s%v moved by %v, want %v", w.relay, w.name, w.labels, got, w.want)
		}
	}
	if n := a1.value(t, "connector_agents_online"); n != 1 {
		t.Errorf("r1: connector_agents_online = %v, want 1", n)
	}
	if n := b1.value(t, "connector_agents_online"); n != 0 {
		t.Errorf("r2: connector_agents_online = %v, want 0", n)
	}
}

// documentedSeries are the series the tables of docs/metrics.md list,
// the relay's and the agent's.
func documentedSeries(t *testing.T) (relaySeries, agentSeries map[string]bool) {
	t.Helper()
	b, err := os.ReadFile("../docs/metrics.md")
	must(t, err)
	relaySeries, agentSeries = map[string]bool{}, map[string]bool{}
	row := regexp.MustCompile("(?m)^\\| `(connector_[a-z_]+)` \\|")
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		if strings.HasPrefix(m[1], "connector_agent_") {
			agentSeries[m[1]] = true
		} else {
			relaySeries[m[1]] = true
		}
	}
	if len(relaySeries) < 10 || len(agentSeries) < 3 {
		t.Fatalf("docs/metrics.md lists %d relay and %d agent series; its tables did not parse", len(relaySeries), len(agentSeries))
	}
	return relaySeries, agentSeries
}

// The Grafana dashboard is valid JSON, and every expression in it names
// only series that exist: connector_ series docs/metrics.md lists (a
// histogram's _bucket, _sum and _count included), or the Go runtime and
// process series every registry carries.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("../docs/grafana/connector.json")
	must(t, err)
	var dash any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("docs/grafana/connector.json: %v", err)
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if s, ok := e.(string); ok && k == "expr" {
					exprs = append(exprs, s)
				}
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(dash)
	if len(exprs) < 10 {
		t.Fatalf("the dashboard has %d expressions", len(exprs))
	}
	docRelay, docAgent := documentedSeries(t)
	runtime := map[string]bool{}
	fams, err := metrics.NewRegistry().Gather()
	must(t, err)
	for _, f := range fams {
		runtime[f.GetName()] = true
	}
	known := func(name string) bool {
		if docRelay[name] || docAgent[name] || runtime[name] {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && (docRelay[base] || docAgent[base]) {
				return true
			}
		}
		return false
	}
	seriesName := regexp.MustCompile(`\b(connector|go|process)_[a-z_]+\b`)
	used := map[string]bool{}
	for _, e := range exprs {
		names := seriesName.FindAllString(e, -1)
		if len(names) == 0 {
			t.Errorf("expression %q names no series", e)
		}
		for _, n := range names {
			used[n] = true
			if !known(n) {
				t.Errorf("expression %q names %s, which docs/metrics.md does not list and no registry serves", e, n)
			}
		}
	}
	// Every documented series has a panel.
	for n := range docRelay {
		if !used[n] && !used[n+"_bucket"] {
			t.Errorf("no dashboard panel shows %s", n)
		}
	}
	for n := range docAgent {
		if !used[n] {
			t.Errorf("no dashboard panel shows %s", n)
		}
	}
}

// A CLI mux counts as a live CLI session while it is connected, and its
// tunnels count under path "cli" with their exact bytes.
func TestMetricsCLIMux(t *testing.T) {
	d, _ := startMetricsDemo(t)
	addr := d.Relay.MetricsAddr()
	s0 := scrapeMetrics(t, addr)
	if n := s0.value(t, "connector_cli_sessions_live"); n != 0 {
		t.Fatalf("connector_cli_sessions_live = %v before any CLI, want 0", n)
	}
	m := dialMux(t, d, mintCLI(t, d).Token)
	testwait.For(t, 10*time.Second, "the CLI mux to count as live", func() bool {
		return scrapeMetrics(t, addr).value(t, "connector_cli_sessions_live") == 1
	})
	const n = 1<<20 + 99
	st, err := m.open("127.0.0.2", uint16(d.Echo.Addr().Port))
	must(t, err)
	must(t, roundTrip(mux.NewStream(st), n))
	st.Close()
	testwait.For(t, 10*time.Second, "the CLI tunnel to close", func() bool {
		return scrapeMetrics(t, addr).value(t, "connector_tunnels_open", "path", "cli") == 0
	})
	s1 := scrapeMetrics(t, addr)
	for _, w := range []struct {
		labels []string
		name   string
		want   float64
	}{
		{[]string{"path", "cli", "result", "ok"}, "connector_tunnels_opened_total", 1},
		{[]string{"path", "cli", "direction", "to_device"}, "connector_tunnel_bytes_total", n},
		{[]string{"path", "cli", "direction", "from_device"}, "connector_tunnel_bytes_total", n},
		{[]string{"path", "ws", "result", "ok"}, "connector_tunnels_opened_total", 0},
	} {
		if got := s1.value(t, w.name, w.labels...) - s0.value(t, w.name, w.labels...); got != w.want {
			t.Errorf("%s%v moved by %v, want %v", w.name, w.labels, got, w.want)
		}
	}
	m.sess.Close()
	m.ws.CloseNow()
	testwait.For(t, 10*time.Second, "the CLI mux to end", func() bool {
		return scrapeMetrics(t, addr).value(t, "connector_cli_sessions_live") == 0
	})
}

// Viewers of one camera path count as RTSP viewers of one shared camera
// session, whose tunnel counts under path "rtsp"; the gauges fall back to
// zero when they leave.
func TestMetricsRTSPViewers(t *testing.T) {
	d := startDemo(t)
	_, h := rtspCamera(t, d, rtsptest.Options{User: rtspUser, Pass: rtspPass}, true)
	u := mintRTSP(t, d, demo.Bearer(d.Info.Token), h, "/metrics", 0)
	s0 := gathered(t, d.Relay)
	const viewers = 3
	var ps []*rtspPuller
	for range viewers {
		p, err := rtspPullErr(u, gortsplib.ProtocolTCP, gortsplib.TunnelNone)
		must(t, err)
		ps = append(ps, p)
	}
	testwait.For(t, 10*time.Second, "three viewers of one shared session", func() bool {
		s := gathered(t, d.Relay)
		return s.value(t, "connector_rtsp_viewers") == viewers && s.value(t, "connector_rtsp_shared_sessions") == 1
	})
	s1 := gathered(t, d.Relay)
	if n := s1.value(t, "connector_rtsp_camera_sessions"); n != 1 {
		t.Errorf("connector_rtsp_camera_sessions = %v for %d viewers of one path, want 1", n, viewers)
	}
	if n := s1.value(t, "connector_rtsp_clients"); n != viewers {
		t.Errorf("connector_rtsp_clients = %v, want %d", n, viewers)
	}
	if got := s1.value(t, "connector_tunnels_opened_total", "path", "rtsp", "result", "ok") - s0.value(t, "connector_tunnels_opened_total", "path", "rtsp", "result", "ok"); got != 1 {
		t.Errorf("connector_tunnels_opened_total{path=rtsp,result=ok} moved by %v for one camera session, want 1", got)
	}
	if n := s1.value(t, "connector_tunnel_bytes_total", "path", "rtsp", "direction", "from_device"); n == 0 {
		t.Error("no bytes from the camera counted under path rtsp")
	}
	for _, p := range ps {
		p.c.Close()
	}
	testwait.For(t, 20*time.Second, "the viewers and the camera session to end", func() bool {
		s := gathered(t, d.Relay)
		return s.value(t, "connector_rtsp_viewers") == 0 && s.value(t, "connector_rtsp_shared_sessions") == 0 && s.value(t, "connector_tunnels_open", "path", "rtsp") == 0
	})
}
