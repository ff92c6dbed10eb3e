package relay_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"

	"github.com/nanodems/connector/agent"
	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/testnet"
	"github.com/nanodems/connector/internal/testwait"
	"github.com/nanodems/connector/mux"
	"github.com/nanodems/connector/relay"
	"github.com/nanodems/connector/relay/store"
	"github.com/nanodems/connector/rtsp/rtsptest"
)

// fleet is one installation served by several relays: r1 is the demo's,
// the others share its data directory (Agent CA, internal CA, API
// certificate, sealing key) and its SQLite database file, each with a
// store of its own on that file, as separate processes would have.
type fleet struct {
	d      *demo.Demo
	dir    string
	relays []*relay.Server
}

func startFleet(t testing.TB, n int) *fleet {
	t.Helper()
	root := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := demo.Start(ctx, demo.Options{DataDir: root, Logger: quietLogger(), Relay: func(c *relay.Config) {
		c.PeerAddr, c.NodeName = "127.0.0.1:0", "r1"
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	f := &fleet{d: d, dir: filepath.Join(root, "relay"), relays: []*relay.Server{d.Relay}}
	for i := 2; i <= n; i++ {
		f.relays = append(f.relays, f.startRelay(t, "r"+strconv.Itoa(i)))
	}
	return f
}

func (f *fleet) startRelay(t testing.TB, node string) *relay.Server {
	t.Helper()
	s, err := relay.New(relay.Config{
		DataDir: f.dir, APIAddr: "127.0.0.1:0", AgentAddr: "127.0.0.1:0", RTSPAddr: "127.0.0.1:0",
		PeerAddr: "127.0.0.1:0", NodeName: node, Logger: quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		s.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// via is the demo as seen through relay s: the same tenant, user, token
// and handles, another relay's API.
func (f *fleet) via(t *testing.T, s *relay.Server) *demo.Demo {
	d := &demo.Demo{Relay: s, API: demo.NewAPI(s.APIURL(), f.d.Info.CAPin), Info: f.d.Info}
	d.Info.RelayURL = s.APIURL()
	t.Cleanup(d.API.Client.CloseIdleConnections)
	return d
}

// fleetAgent is an agent of the fleet's tenant that runs until stop.
type fleetAgent struct {
	*agent.Agent
	dir  string
	stop func()
}

// startAgent enrolls an agent into siteID and runs it against relay s,
// returning once it holds the site's allowlist.
func (f *fleet) startAgent(t *testing.T, s *relay.Server, siteID string) *fleetAgent {
	t.Helper()
	var tok struct {
		EnrollmentToken string `json:"enrollment_token"`
	}
	must(t, f.d.API.Do(context.Background(), "POST", "/api/sites/"+siteID+"/enrollment-tokens", nil, &tok, demo.Admin(f.d.Info.AdminKey)))
	dir := t.TempDir()
	_, err := agent.Enroll(context.Background(), agent.EnrollOptions{RelayURL: s.APIURL(), Token: tok.EnrollmentToken, Pin: f.d.Info.CAPin, Dir: dir})
	must(t, err)
	return f.runAgent(t, dir, s, siteID)
}

// runAgent runs the agent enrolled in dir against relay s.
func (f *fleet) runAgent(t *testing.T, dir string, s *relay.Server, siteID string) *fleetAgent {
	t.Helper()
	a, err := agent.New(agent.Config{Dir: dir, Logger: quietLogger(), AllowLoopback: true, RelayAddrs: []string{s.AgentAddr()}})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Run(ctx)
	}()
	fa := &fleetAgent{Agent: a, dir: dir, stop: sync.OnceFunc(func() { cancel(); <-done })}
	t.Cleanup(fa.stop)
	f.waitAllowlist(t, fa, siteID)
	return fa
}

func (f *fleet) waitAllowlist(t *testing.T, a *fleetAgent, siteID string) {
	t.Helper()
	site, err := f.d.Relay.Store().GetSite(context.Background(), siteID)
	must(t, err)
	testwait.For(t, 10*time.Second, "agent connected with the site's allowlist", func() bool {
		return a.Connected() && a.Allowlist().Version() >= site.AllowlistVersion
	})
}

// echoDevice adds a device on siteID whose one port is the demo's echo
// target, and returns its handle and loopback address.
func (f *fleet) echoDevice(t *testing.T, siteID string) (handle, loopback string) {
	t.Helper()
	port := f.d.Echo.Addr().Port
	var dev struct {
		Handles    map[string]string `json:"handles"`
		LoopbackIP string            `json:"loopback_ip"`
	}
	must(t, f.d.API.Do(context.Background(), "POST", "/api/sites/"+siteID+"/devices", map[string]any{"host": "127.0.0.1", "ports": []int{port}, "label": "echo"}, &dev, demo.Bearer(f.d.Info.Token)))
	return dev.Handles[strconv.Itoa(port)], dev.LoopbackIP
}

type agentRow struct {
	ID            string `json:"id"`
	Online        bool   `json:"online"`
	Relay         string `json:"relay"`
	ActiveStreams int64  `json:"active_streams"`
}

func agentsOf(t *testing.T, d *demo.Demo, siteID string) map[string]agentRow {
	t.Helper()
	var rows []agentRow
	must(t, d.API.Do(context.Background(), "GET", "/api/sites/"+siteID+"/agents", nil, &rows, demo.Bearer(d.Info.Token)))
	out := map[string]agentRow{}
	for _, r := range rows {
		out[r.ID] = r
	}
	return out
}

// TestFleetBridge: three relays on one database; the demo site's agent on
// r1, a second site's agent on r2. Every access path reaches a handle from
// a relay that does not hold its agent, through BridgeTunnel, with 64 MiB
// checked both ways and half-close intact; the refusals cross the bridge
// as they are; the agents list names the right relay on every relay; a
// relay closed deletes its leases.
func TestFleetBridge(t *testing.T) {
	f := startFleet(t, 3)
	r1, r2, r3 := f.relays[0], f.relays[1], f.relays[2]
	ctx := context.Background()
	siteB := addSite(t, f.d)
	echoB, _ := f.echoDevice(t, siteB)
	cam, camHandle := rtspCamera(t, f.d, rtsptest.Options{User: rtspUser, Pass: rtspPass}, true)
	b := f.startAgent(t, r2, siteB)
	via2, via3 := f.via(t, r2), f.via(t, r3)

	t.Run("websocket tunnel", func(t *testing.T) {
		// r2 → r1's agent, and r1 → r2's agent: both roles of the bridge.
		for _, tc := range []struct {
			name   string
			d      *demo.Demo
			handle string
		}{{"r2 to agent on r1", via2, f.d.Info.EchoHandle}, {"r1 to agent on r2", f.d, echoB}} {
			c, err := cli.DialTunnel(ctx, operator(tc.d), tc.handle)
			must(t, err)
			if err := roundTrip(c, 64<<20); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			c.Close()
		}
		if st := r2.BridgeStats(); st.Opens == 0 || st.Bytes < 2*64<<20 {
			t.Fatalf("r2 bridge counters %+v, want an open and 128 MiB", st)
		}
	})
	t.Run("CLI mux", func(t *testing.T) {
		s := mintCLI(t, f.d)
		m := dialMux(t, via3, s.Token)
		st, err := m.open("127.0.0.2", uint16(f.d.Echo.Addr().Port))
		must(t, err)
		must(t, roundTrip(mux.NewStream(st), 64<<20))
	})
	t.Run("browser proxy", func(t *testing.T) {
		// The camera's page through r3 is the page through r1, byte for byte.
		get := func(d *demo.Demo) [32]byte {
			req, _ := http.NewRequest("GET", d.Info.RelayURL+"/c/"+d.Info.HTTPHandle+"/", nil)
			req.Header.Set("Authorization", "Bearer "+d.Info.Token)
			resp, err := d.API.Client.Do(req)
			must(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			must(t, err)
			if resp.StatusCode != 200 || len(body) == 0 {
				t.Fatalf("GET via %s: %d, %d bytes", d.Info.RelayURL, resp.StatusCode, len(body))
			}
			return sha256.Sum256(body)
		}
		before := r3.BridgeStats().Opens
		if get(via3) != get(f.d) {
			t.Fatal("the camera's page differs through r3")
		}
		if r3.BridgeStats().Opens == before {
			t.Fatal("r3 served the page without a bridge")
		}
	})
	t.Run("RTSP", func(t *testing.T) {
		for _, proto := range []gortsplib.Protocol{gortsplib.ProtocolTCP, gortsplib.ProtocolUDP} {
			p := rtspPull(t, mintRTSP(t, via2, demo.Bearer(f.d.Info.Token), camHandle, "/fleet", 0), proto, gortsplib.TunnelNone)
			p.wait(t, 30, 10*time.Second)
			p.c.Close()
		}
		must(t, cam.WaitSessions(0, 5*time.Second))
	})
	t.Run("refusals cross the bridge", func(t *testing.T) {
		h := "h-" + "QQQQQQQQQQQQQQQQQQQQQA"
		must(t, r1.Store().InsertHandle(ctx, store.Handle{Handle: h, TenantID: f.d.Info.TenantID, DeviceID: f.d.Info.DeviceID, Port: 9, CreatedAt: time.Now()}))
		wantRefusal(t, operator(via2), h, 403, "target not in allowlist")
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		must(t, err)
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		refused := addDevice(t, f.d, port)
		wantRefusal(t, operator(via2), refused, 502, "connection refused")
		if r2.BridgeStats().Failures == 0 || r1.BridgeStats().Failures == 0 {
			t.Fatalf("failures r1 %+v r2 %+v, want counted on both", r1.BridgeStats(), r2.BridgeStats())
		}
	})
	t.Run("agents list names the holding relay", func(t *testing.T) {
		for _, d := range []*demo.Demo{f.d, via2, via3} {
			if row := agentsOf(t, d, f.d.Info.SiteID)[f.d.Info.AgentID]; !row.Online || row.Relay != "r1" {
				t.Fatalf("via %s: demo agent %+v, want online on r1", d.Info.RelayURL, row)
			}
			if row := agentsOf(t, d, siteB)[b.ID()]; !row.Online || row.Relay != "r2" {
				t.Fatalf("via %s: agent b %+v, want online on r2", d.Info.RelayURL, row)
			}
		}
	})
	t.Run("closed relay deletes its leases", func(t *testing.T) {
		must(t, r2.Close())
		_, err := r1.Store().LookupLease(ctx, b.ID(), time.Now())
		wantErrIs(t, err, store.ErrNotFound)
		b.stop() // it would come back on r2's address otherwise
		wantRefusal(t, operator(f.d), echoB, 503, "agent reconnecting")
		if row := agentsOf(t, via3, siteB)[b.ID()]; row.Online {
			t.Fatalf("agent b %+v, want offline", row)
		}
	})
}

// TestFleetCrashedRelayLeasesExpire: a relay that dies without deleting
// its leases is named until they expire; after that no reader uses them.
func TestFleetCrashedRelayLeasesExpire(t *testing.T) {
	f := startFleet(t, 2)
	r1, r2 := f.relays[0], f.relays[1]
	ctx := context.Background()
	siteB := addSite(t, f.d)
	echoB, _ := f.echoDevice(t, siteB)
	b := f.startAgent(t, r2, siteB)
	relay.Crash(r2)
	must(t, r2.Close())
	b.stop()
	l, err := r1.Store().LookupLease(ctx, b.ID(), time.Now())
	must(t, err) // still there: nobody deleted it
	if l.RelayNode != "r2" {
		t.Fatalf("lease %+v, want r2's", l)
	}
	// r1 bridges to the dead relay and fails as for an offline agent.
	wantRefusal(t, operator(f.d), echoB, 503, "agent reconnecting")
	// The list shows the agent online while its lease was renewed within
	// three heartbeats, and offline once it was not, long before the
	// lease expires.
	if row := agentsOf(t, f.d, siteB)[b.ID()]; !row.Online || row.Relay != "r2" {
		t.Fatalf("agent on the just-crashed r2 listed as %+v, want online on r2", row)
	}
	stale := l
	stale.ExpiresAt = time.Now().Add(relay.LeaseTTL - 16*time.Second)
	must(t, r1.Store().PutLease(ctx, stale))
	if row := agentsOf(t, f.d, siteB)[b.ID()]; row.Online || row.Relay != "" {
		t.Fatalf("agent whose lease was last renewed 16 s ago listed as %+v, want offline", row)
	}
	l = stale
	_, err = r1.Store().LookupLease(ctx, b.ID(), l.ExpiresAt)
	wantErrIs(t, err, store.ErrNotFound)
	// Reaped, the row is gone: not found even at a time it was live.
	n, err := r1.Store().ReapLeases(ctx, l.ExpiresAt)
	must(t, err)
	if n < 1 {
		t.Fatalf("reaped %d leases, want r2's at least", n)
	}
	_, err = r1.Store().LookupLease(ctx, b.ID(), l.ExpiresAt.Add(-time.Minute))
	wantErrIs(t, err, store.ErrNotFound)
}

// TestFleetCrashedRelayStandIn: a handle pinned to an agent that died
// with its relay (its lease still names that relay) is served by the
// site's other online agent, on a third relay, without waiting for the
// lease to expire and without re-pinning.
func TestFleetCrashedRelayStandIn(t *testing.T) {
	f := startFleet(t, 3)
	r1, r2, r3 := f.relays[0], f.relays[1], f.relays[2]
	ctx := context.Background()
	site := addSite(t, f.d)
	h, _ := f.echoDevice(t, site)
	x := f.startAgent(t, r2, site)
	y := f.startAgent(t, r3, site)
	if _, err := r1.Store().PinHandle(ctx, h, x.ID()); err != nil {
		t.Fatal(err)
	}
	relay.Crash(r2)
	must(t, r2.Close())
	x.stop()
	if _, err := r1.Store().LookupLease(ctx, x.ID(), time.Now()); err != nil {
		t.Fatalf("the dead relay's lease of x: %v, want it still there", err)
	}
	before := r1.BridgeStats().Opens
	c, err := cli.DialTunnel(ctx, operator(f.d), h)
	must(t, err)
	defer c.Close()
	must(t, roundTrip(c, 1<<20))
	if r1.BridgeStats().Opens != before+1 || agentsOf(t, f.d, site)[y.ID()].Relay != "r3" {
		t.Fatalf("r1 did not bridge to the stand-in on r3 (bridge %+v)", r1.BridgeStats())
	}
	r, err := r1.Store().ResolveHandle(ctx, h)
	must(t, err)
	if r.AgentID != x.ID() {
		t.Fatalf("re-pinned to %s, want the pin on %s kept", r.AgentID, x.ID())
	}
}

// TestFleetPeerCertificates: the peer listener takes only relay leaves of
// the internal CA, and the agent listener only agent certificates of the
// Agent CA.
func TestFleetPeerCertificates(t *testing.T) {
	f := startFleet(t, 2)
	r1, r2 := f.relays[0], f.relays[1]
	relayLeaf, internalCA := relay.PeerTLS(r2)
	agentDir := filepath.Join(filepath.Dir(f.dir), "agent")
	agentCert, err := tls.LoadX509KeyPair(filepath.Join(agentDir, "agent.pem"), filepath.Join(agentDir, "agent-key.pem"))
	must(t, err)

	// handshake dials addr with cert and reads: the server's first bytes
	// when it took the certificate, its alert when it did not (TLS 1.3
	// checks the client's certificate after the client's handshake ends).
	handshake := func(addr string, cert tls.Certificate, cfg *tls.Config) error {
		cfg.Certificates = []tls.Certificate{cert}
		cfg.MinVersion = tls.VersionTLS13
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var b [1]byte
		_, err = c.Read(b[:])
		return err
	}
	peer := func() *tls.Config {
		return &tls.Config{RootCAs: internalCA, ServerName: "127.0.0.1", NextProtos: []string{"h2"}}
	}
	// A relay's leaf is taken (the server's HTTP/2 settings come back).
	must(t, handshake(r1.PeerAddr(), relayLeaf, peer()))
	// An agent's is refused.
	if err := handshake(r1.PeerAddr(), agentCert, peer()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("agent certificate at the peer listener: %v, want a certificate refusal", err)
	}
	// A relay's leaf at the agent listener is refused.
	if err := handshake(r1.AgentAddr(), relayLeaf, &tls.Config{InsecureSkipVerify: true}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("relay certificate at the agent listener: %v, want a certificate refusal", err)
	}
}

func wantErrIs(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("err = %v, want %v", err, target)
	}
}

// TestFleetSiteAgents: a site with two agents (spec 002 §4). Both get the
// allowlist at once; a handle is pinned to the agent that served it first
// (the least loaded, ties by id) and stays pinned while that agent is
// online, on whichever relay; while it is not, the least-loaded online
// agent of the site serves it, on whichever relay, without re-pinning.
func TestFleetSiteAgents(t *testing.T) {
	f := startFleet(t, 2)
	r1, r2 := f.relays[0], f.relays[1]
	via2 := f.via(t, r2)
	ctx := context.Background()
	site := addSite(t, f.d)
	x := f.startAgent(t, r1, site)
	y := f.startAgent(t, r1, site)

	// A device added now reaches both agents of the site.
	h, _ := f.echoDevice(t, site)
	f.waitAllowlist(t, x, site)
	f.waitAllowlist(t, y, site)

	pinned, other := x, y
	if y.ID() < x.ID() {
		pinned, other = y, x
	}
	route := func() string {
		r, err := r1.Store().ResolveHandle(ctx, h)
		must(t, err)
		return r.AgentID
	}
	// open dials h through d, checks a round trip, and reports which agent
	// serves the tunnel by its active streams on the relay that holds it.
	open := func(d *demo.Demo) net.Conn {
		t.Helper()
		c, err := cli.DialTunnel(ctx, operator(d), h)
		must(t, err)
		t.Cleanup(func() { c.Close() })
		return c
	}
	active := func(d *demo.Demo, a *fleetAgent) int64 {
		return agentsOf(t, d, site)[a.ID()].ActiveStreams
	}
	// closeAndSettle closes c and waits until a serves want tunnels.
	closeAndSettle := func(c net.Conn, d *demo.Demo, a *fleetAgent, want int64) {
		t.Helper()
		c.Close()
		testwait.For(t, 5*time.Second, "tunnel closed at the relay", func() bool { return active(d, a) == want })
	}

	c := open(f.d)
	if got := route(); got != pinned.ID() {
		t.Fatalf("pinned to %s, want %s (both idle: the smaller id)", got, pinned.ID())
	}
	if active(f.d, pinned) != 1 || active(f.d, other) != 0 {
		t.Fatal("the first tunnel is not on the pinned agent")
	}
	// The pinned agent stays the one, however loaded.
	c2 := open(f.d)
	if active(f.d, pinned) != 2 {
		t.Fatal("the second tunnel left the pinned agent")
	}
	closeAndSettle(c2, f.d, pinned, 1)
	closeAndSettle(c, f.d, pinned, 0)

	// Pinned agent offline: the other one serves, and the pin stays.
	pinned.stop()
	c = open(f.d)
	if active(f.d, other) != 1 {
		t.Fatal("the stand-in agent does not serve the tunnel")
	}
	must(t, roundTrip(c, 1<<20))
	if got := route(); got != pinned.ID() {
		t.Fatalf("re-pinned to %s, want the pin on %s kept", got, pinned.ID())
	}
	closeAndSettle(c, f.d, other, 0)

	// The pinned agent back, on r2: r1 bridges to it although the other
	// agent is r1's own.
	pinned = f.runAgent(t, pinned.dir, r2, site)
	before := r1.BridgeStats().Opens
	c = open(f.d)
	if r1.BridgeStats().Opens != before+1 || active(via2, pinned) != 1 {
		t.Fatalf("r1 did not bridge to the pinned agent on r2 (bridge %+v)", r1.BridgeStats())
	}
	must(t, roundTrip(c, 1<<20))
	closeAndSettle(c, via2, pinned, 0)

	// Pinned agent offline again: r2, which has no agent of the site now,
	// bridges to the least-loaded online one, on r1.
	pinned.stop()
	before = r2.BridgeStats().Opens
	c = open(via2)
	if r2.BridgeStats().Opens != before+1 || active(f.d, other) != 1 {
		t.Fatalf("r2 did not bridge to the stand-in agent on r1 (bridge %+v)", r2.BridgeStats())
	}
	must(t, roundTrip(c, 1<<20))
	if got := route(); got != pinned.ID() {
		t.Fatalf("re-pinned to %s, want the pin on %s kept", got, pinned.ID())
	}
}

// TestFleetLockedJob: two relays run the same job under one TTL lock: one
// runs it each tick, never both; when the holder closes the other takes
// over at its next tick, and when a holder crashes (no release) the
// other takes over once the TTL has passed.
func TestFleetLockedJob(t *testing.T) {
	dir := t.TempDir()
	start := func(node string) *relay.Server {
		s, err := relay.New(relay.Config{DataDir: dir, APIAddr: "127.0.0.1:0", AgentAddr: "127.0.0.1:0", RTSPAddr: "off", NodeName: node, Logger: quietLogger()})
		must(t, err)
		must(t, s.Start())
		t.Cleanup(func() { s.Close() })
		return s
	}
	var mu sync.Mutex
	var runs []jobRun
	job := func(node string) func() {
		return func() {
			mu.Lock()
			runs = append(runs, jobRun{node, time.Now()})
			mu.Unlock()
		}
	}
	snapshot := func() []jobRun {
		mu.Lock()
		defer mu.Unlock()
		return append([]jobRun(nil), runs...)
	}
	countOf := func(node string) int {
		n := 0
		for _, r := range snapshot() {
			if r.node == node {
				n++
			}
		}
		return n
	}
	const every, ttl = 50 * time.Millisecond, 400 * time.Millisecond
	nodes := map[string]*relay.Server{}
	for _, n := range []string{"a", "b"} {
		nodes[n] = start(n)
	}
	for n, s := range nodes {
		relay.RunLocked(s, "test-job", every, ttl, job(n))
	}
	testwait.For(t, 10*time.Second, "20 runs", func() bool { return len(snapshot()) >= 20 })
	holder := snapshot()[0].node
	if countOf(holder) != len(snapshot()) {
		t.Fatalf("runs %v: both relays ran the job", snapshot())
	}
	next := map[string]string{"a": "b", "b": "a"}[holder]

	// The holder closes, releasing the lock: the other takes over.
	closed := time.Now()
	must(t, nodes[holder].Close())
	testwait.For(t, 10*time.Second, "takeover after a close", func() bool { return countOf(next) > 0 })
	t.Logf("takeover after close: %v", firstRun(snapshot(), next).Sub(closed))
	if last := lastRun(snapshot(), holder); last.After(firstRun(snapshot(), next)) {
		t.Fatal("the closed holder ran after the other took over")
	}

	// A third relay joins; the holder crashes, keeping the lock: the third
	// takes over only once the TTL has passed.
	c := start("c")
	relay.RunLocked(c, "test-job", every, ttl, job("c"))
	testwait.For(t, 10*time.Second, "5 more runs on "+next, func() bool { return countOf(next) >= 5 })
	if countOf("c") != 0 {
		t.Fatal("the new relay ran the job while the holder lives")
	}
	relay.Crash(nodes[next])
	must(t, nodes[next].Close())
	lastNext := lastRun(snapshot(), next)
	testwait.For(t, 10*time.Second, "takeover after a crash", func() bool { return countOf("c") > 0 })
	gap := firstRun(snapshot(), "c").Sub(lastNext)
	t.Logf("takeover after crash: %v after the last run (TTL %v)", gap, ttl)
	if gap < ttl-every {
		t.Fatalf("taken over %v after the crashed holder's last run, before its TTL %v passed", gap, ttl)
	}
}

// jobRun is one run of a locked job: which relay, when.
type jobRun struct {
	node string
	at   time.Time
}

func firstRun(runs []jobRun, node string) time.Time {
	for _, r := range runs {
		if r.node == node {
			return r.at
		}
	}
	return time.Time{}
}

func lastRun(runs []jobRun, node string) time.Time {
	var last time.Time
	for _, r := range runs {
		if r.node == node {
			last = r.at
		}
	}
	return last
}

// TestFleetBridgeConn: the conn Dial returns through a bridge behaves as a
// local tunnel's: the device answers after the caller's half-close, a
// tunnel asked for as dedicated moves to its own connection at the
// holding relay, a read deadline times a Read out and can be lifted, and
// a tunnel cut at the holding relay (its agent gone) fails the caller's
// Read instead of ending it.
func TestFleetBridgeConn(t *testing.T) {
	f := startFleet(t, 2)
	r2 := f.relays[1]
	ctx := context.Background()
	// A device that reads to EOF, then answers with the count, then ends.
	counter := testnet.Serve(t, func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c)
		fmt.Fprintf(c, "got %d bytes", n)
	})
	h := addDevice(t, f.d, counter.Port)
	admin := relay.Principal{Admin: true, Actor: "test"}

	c, err := r2.Dial(ctx, admin, h, relay.DialOptions{})
	must(t, err)
	if st := r2.BridgeStats(); st.Open != 1 {
		t.Fatalf("bridges open on r2: %+v, want 1", st)
	}
	_, err = c.Write(make([]byte, 300000))
	must(t, err)
	must(t, c.(closeWriter).CloseWrite())
	got, err := io.ReadAll(c)
	must(t, err)
	if string(got) != "got 300000 bytes" {
		t.Fatalf("answer %q after the half-close", got)
	}
	c.Close()

	// Asked for as dedicated, the tunnel moves to its own connection
	// between r1 and the agent; the bridge carries it as before.
	c, err = r2.Dial(ctx, admin, f.d.Info.EchoHandle, relay.DialOptions{Flags: mux.FlagDedicated})
	must(t, err)
	must(t, roundTrip(c, 8<<20))
	c.Close()
	var rows []struct {
		Dedicated int64 `json:"dedicated_total"`
	}
	must(t, f.d.API.Do(ctx, "GET", "/api/sites/"+f.d.Info.SiteID+"/agents", nil, &rows, demo.Admin(f.d.Info.AdminKey)))
	if len(rows) != 1 || rows[0].Dedicated != 1 {
		t.Fatalf("agents %+v, want one dedicated connection at r1", rows)
	}

	// A read deadline: a Read times out, and reads again once lifted.
	c, err = r2.Dial(ctx, admin, f.d.Info.EchoHandle, relay.DialOptions{})
	must(t, err)
	defer c.Close()
	must(t, c.SetReadDeadline(time.Now().Add(-time.Second)))
	var b [16]byte
	if _, err := c.Read(b[:]); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past its deadline: %v", err)
	}
	must(t, c.SetReadDeadline(time.Time{}))
	_, err = c.Write([]byte("ping"))
	must(t, err)
	_, err = io.ReadFull(c, b[:4])
	must(t, err)
	if string(b[:4]) != "ping" {
		t.Fatalf("echo %q", b[:4])
	}

	// The agent's session on r1 ends: the tunnel is cut, and the caller
	// on r2 sees an error, not a clean end.
	must(t, f.d.API.Do(ctx, "POST", "/api/agents/"+f.d.Info.AgentID+"/revoke", nil, nil, demo.Admin(f.d.Info.AdminKey)))
	must(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = c.Read(b[:])
	if err == nil || err == io.EOF || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read of a cut tunnel: %v, want the cut", err)
	}
	r1 := f.relays[0]
	testwait.For(t, 5*time.Second, "bridge ended on r1", func() bool { return r1.BridgeStats().Open == 0 })
	c.Close()
	if st := r2.BridgeStats(); st.Open != 0 {
		t.Fatalf("bridges open on r2 after Close: %+v", st)
	}
}
