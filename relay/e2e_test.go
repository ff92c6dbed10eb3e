package relay_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nanodems/connector/agent"
	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/testnet"
	"github.com/nanodems/connector/internal/testwait"
	"github.com/nanodems/connector/mux"
	"github.com/nanodems/connector/relay"
	"github.com/nanodems/connector/relay/store"
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(fdChildEnv); spec != "" {
		os.Exit(runFDChild(spec)) // a relay in a child process (fdlimit_test.go)
	}
	goleak.VerifyTestMain(withTestPG{m})
}

func quietLogger() *slog.Logger {
	level := slog.LevelError
	if os.Getenv("NANODEMS_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func startDemo(t *testing.T, relayOpts ...func(*relay.Config)) *demo.Demo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o := demo.Options{DataDir: t.TempDir(), Logger: quietLogger()}
	if len(relayOpts) > 0 {
		o.Relay = relayOpts[0]
	}
	d, err := demo.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

func operator(d *demo.Demo) cli.Relay {
	return cli.Relay{URL: d.Info.RelayURL, Token: d.Info.Token, Pin: d.Info.CAPin}
}

type closeWriter interface{ CloseWrite() error }

// roundTrip is testnet.RoundTrip under the short name the relay's tests
// use: n random bytes through c to an echo target and back, checked.
var roundTrip = testnet.RoundTrip

func TestTunnel64MiBChecksum(t *testing.T) {
	d := startDemo(t)
	c, err := cli.DialTunnel(context.Background(), operator(d), d.Info.EchoHandle)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := roundTrip(c, 64<<20); err != nil {
		t.Fatal(err)
	}
}

func Test200ConcurrentTunnels(t *testing.T) {
	d := startDemo(t)
	const tunnels = 200
	var wg sync.WaitGroup
	errs := make(chan error, tunnels)
	for i := range tunnels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := cli.DialTunnel(context.Background(), operator(d), d.Info.EchoHandle)
			if err != nil {
				errs <- fmt.Errorf("tunnel %d: %w", i, err)
				return
			}
			defer c.Close()
			if err := roundTrip(c, 256<<10+int64(i)*1031); err != nil {
				errs <- fmt.Errorf("tunnel %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// All 200 ran over the one session of the one agent.
	var agents []struct {
		Online bool `json:"online"`
	}
	if err := d.API.Do(context.Background(), "GET", "/api/sites/"+d.Info.SiteID+"/agents", nil, &agents, demo.Admin(d.Info.AdminKey)); err != nil {
		t.Fatal(err)
	}
	if len(agents) != 1 || !agents[0].Online {
		t.Fatalf("agents = %+v, want one online agent", agents)
	}
}

// A target that reads its whole request to EOF before it answers works
// only if half-close crosses every hop: WebSocket, relay, smux, agent.
func TestHalfClose(t *testing.T) {
	d := startDemo(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				h := sha256.New()
				n, _ := io.Copy(h, c)             // to EOF
				time.Sleep(20 * time.Millisecond) // deliberate: the answer comes a while after the client's EOF
				fmt.Fprintf(c, "%d %x\n", n, h.Sum(nil))
				c.Write(bytes.Repeat([]byte("z"), 1<<20)) // a long answer after EOF
			}()
		}
	}()
	handle := addDevice(t, d, ln.Addr().(*net.TCPAddr).Port)

	c, err := cli.DialTunnel(context.Background(), operator(d), handle)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := bytes.Repeat([]byte("request "), 100000)
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	if err := c.(closeWriter).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	answer, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%d %x\n", len(req), sha256.Sum256(req))
	if !strings.HasPrefix(string(answer), want) {
		t.Fatalf("answer starts %q, want %q", answer[:min(len(answer), 80)], want)
	}
	if got := len(answer) - len(want); got != 1<<20 {
		t.Fatalf("answer after the digest has %d bytes, want %d", got, 1<<20)
	}
}

// addDevice adds a device on 127.0.0.1 with one port and returns its handle.
func addDevice(t *testing.T, d *demo.Demo, port int) string {
	t.Helper()
	var dev struct {
		Handles map[string]string `json:"handles"`
	}
	body := map[string]any{"host": "127.0.0.1", "ports": []int{port}, "label": "test target"}
	if err := d.API.Do(context.Background(), "POST", "/api/sites/"+d.Info.SiteID+"/devices", body, &dev, demo.Bearer(d.Info.Token)); err != nil {
		t.Fatal(err)
	}
	if err := d.WaitAgent(context.Background(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	return dev.Handles[fmt.Sprint(port)]
}

// wantRefusal dials handle with r and checks the relay's status and reason.
func wantRefusal(t *testing.T, r cli.Relay, handle string, status int, reason string) {
	t.Helper()
	c, err := cli.DialTunnel(context.Background(), r, handle)
	if err == nil {
		c.Close()
		t.Fatalf("tunnel to %s opened, want %d %q", handle, status, reason)
	}
	var re *cli.RelayError
	if !errors.As(err, &re) {
		t.Fatalf("error %v, want a relay refusal", err)
	}
	if re.Status != status || !strings.Contains(re.Reason, reason) {
		t.Fatalf("got %d %q, want %d %q", re.Status, re.Reason, status, reason)
	}
}

func TestRefusals(t *testing.T) {
	d := startDemo(t)
	ctx := context.Background()
	admin := demo.Admin(d.Info.AdminKey)
	op := operator(d)

	t.Run("no credential", func(t *testing.T) {
		wantRefusal(t, cli.Relay{URL: op.URL, Pin: op.Pin}, d.Info.EchoHandle, 401, "authentication required")
	})
	t.Run("bad token", func(t *testing.T) {
		wantRefusal(t, cli.Relay{URL: op.URL, Pin: op.Pin, Token: "nt_" + strings.Repeat("A", 43)}, d.Info.EchoHandle, 401, "invalid or revoked credential")
	})
	t.Run("unknown handle", func(t *testing.T) {
		wantRefusal(t, op, "h-AAAAAAAAAAAAAAAAAAAAAA", 404, "unknown or revoked handle")
		wantRefusal(t, op, "not-a-handle", 404, "unknown or revoked handle")
	})
	t.Run("other tenant", func(t *testing.T) {
		var ten, usr, tok struct {
			ID    string `json:"id"`
			Token string `json:"token"`
		}
		must(t, d.API.Do(ctx, "POST", "/api/admin/tenants", map[string]string{"name": "Other"}, &ten, admin))
		must(t, d.API.Do(ctx, "POST", "/api/tenants/"+ten.ID+"/users", map[string]string{"email": "b@other.invalid", "password": "another-password"}, &usr, admin))
		must(t, d.API.Do(ctx, "POST", "/api/users/"+usr.ID+"/tokens", nil, &tok, admin))
		wantRefusal(t, cli.Relay{URL: op.URL, Pin: op.Pin, Token: tok.Token}, d.Info.EchoHandle, 403, "handle does not belong to your tenant")
		// Nor may it manage the first tenant's site.
		err := d.API.Do(ctx, "POST", "/api/sites/"+d.Info.SiteID+"/devices", map[string]any{"host": "10.0.0.9", "ports": []int{80}}, nil, demo.Bearer(tok.Token))
		wantStatus(t, err, 403)
	})
	t.Run("revoked token", func(t *testing.T) {
		var tok struct {
			ID    string `json:"id"`
			Token string `json:"token"`
		}
		must(t, d.API.Do(ctx, "POST", "/api/users/"+d.Info.UserID+"/tokens", nil, &tok, demo.Bearer(d.Info.Token)))
		c, err := cli.DialTunnel(ctx, cli.Relay{URL: op.URL, Pin: op.Pin, Token: tok.Token}, d.Info.EchoHandle)
		must(t, err)
		c.Close()
		must(t, d.API.Do(ctx, "DELETE", "/api/users/"+d.Info.UserID+"/tokens/"+tok.ID, nil, nil, demo.Bearer(d.Info.Token)))
		wantRefusal(t, cli.Relay{URL: op.URL, Pin: op.Pin, Token: tok.Token}, d.Info.EchoHandle, 401, "invalid or revoked credential")
	})
	t.Run("not in allowlist", func(t *testing.T) {
		// A handle the relay routes but the agent's allowlist lacks: what a
		// compromised relay would ask for. The agent refuses to dial.
		h := "h-" + strings.Repeat("Q", 21) + "A"
		must(t, d.Relay.Store().InsertHandle(ctx, store.Handle{Handle: h, TenantID: d.Info.TenantID, DeviceID: d.Info.DeviceID, Port: 9, CreatedAt: time.Now()}))
		wantRefusal(t, op, h, 403, "target not in allowlist")
	})
	t.Run("refused port", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		must(t, err)
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close() // nothing listens there now
		h := addDevice(t, d, port)
		wantRefusal(t, op, h, 502, "connection refused")
	})
	t.Run("admin crosses tenants, audited", func(t *testing.T) {
		c, err := cli.DialTunnel(ctx, cli.Relay{URL: op.URL, Pin: op.Pin}, d.Info.EchoHandle)
		if err == nil {
			c.Close()
		}
		r := adminTunnel(t, d, d.Info.EchoHandle)
		must(t, roundTrip(r, 1000))
		r.Close()
		wantAudit(t, d, "tunnel.admin_open", d.Info.EchoHandle)
	})
	t.Run("agent offline", func(t *testing.T) {
		must(t, d.API.Do(ctx, "POST", "/api/agents/"+d.Info.AgentID+"/revoke", nil, nil, admin))
		wantRefusal(t, op, d.Info.EchoHandle, 503, "agent reconnecting")
	})
}

// adminTunnel opens a tunnel with the admin key, which cli.Relay does not
// carry; it speaks the WebSocket protocol through cli's building blocks.
func adminTunnel(t *testing.T, d *demo.Demo, handle string) net.Conn {
	t.Helper()
	c, err := cli.DialTunnelHeader(context.Background(), operator(d), handle, http.Header{"X-Admin-Api-Key": {d.Info.AdminKey}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantStatus(t *testing.T, err error, status int) {
	t.Helper()
	var re *cli.RelayError
	if !errors.As(err, &re) || re.Status != status {
		t.Fatalf("error %v, want status %d", err, status)
	}
}

type auditEvent struct {
	Action string `json:"action"`
	Target string `json:"target"`
	Detail string `json:"detail"`
}

func wantAudit(t *testing.T, d *demo.Demo, action, target string) {
	t.Helper()
	var evs []auditEvent
	must(t, d.API.Do(context.Background(), "GET", "/api/audit?action="+action, nil, &evs, demo.Admin(d.Info.AdminKey)))
	for _, e := range evs {
		if e.Target == target {
			return
		}
	}
	t.Fatalf("no audit event %s for %s in %+v", action, target, evs)
}

func TestStaleAllowlistPushRefused(t *testing.T) {
	d := startDemo(t)
	held := d.Agent.Allowlist().Version()
	// An older version with no targets: applied, it would cut every device.
	relay.PushAllowlistRaw(d.Relay, d.Info.SiteID, mux.Allowlist{Version: held - 1})
	if err := testwait.Until(5*time.Second, func() error {
		var evs []auditEvent
		must(t, d.API.Do(context.Background(), "GET", "/api/audit?action=allowlist.refused", nil, &evs, demo.Admin(d.Info.AdminKey)))
		if len(evs) == 1 && strings.Contains(evs[0].Detail, "stale allowlist") {
			return nil
		}
		return fmt.Errorf("no allowlist.refused audit event; have %+v", evs)
	}); err != nil {
		t.Fatal(err)
	}
	if v := d.Agent.Allowlist().Version(); v != held {
		t.Fatalf("agent holds v%d after a stale push, want v%d", v, held)
	}
	c, err := cli.DialTunnel(context.Background(), operator(d), d.Info.EchoHandle)
	must(t, err)
	defer c.Close()
	must(t, roundTrip(c, 4096))
}

func TestDeviceChangesPushAllowlist(t *testing.T) {
	d := startDemo(t)
	ctx := context.Background()
	tok := demo.Bearer(d.Info.Token)
	var dev struct {
		ID               string            `json:"id"`
		LoopbackIP       string            `json:"loopback_ip"`
		Handles          map[string]string `json:"handles"`
		AllowlistVersion int64             `json:"allowlist_version"`
	}
	echoPort := d.Echo.Addr().Port
	must(t, d.API.Do(ctx, "POST", "/api/sites/"+d.Info.SiteID+"/devices", map[string]any{"host": "localhost", "ports": []int{echoPort}}, &dev, tok))
	if dev.LoopbackIP != "127.0.0.3" { // the demo camera has 127.0.0.2
		t.Errorf("second device got loopback %s, want 127.0.0.3", dev.LoopbackIP)
	}
	waitAllowlist(t, d, dev.AllowlistVersion)
	if !d.Agent.Allowlist().Allows("localhost", uint16(echoPort)) {
		t.Fatal("agent allowlist lacks the new device")
	}
	first := dev.Handles[fmt.Sprint(echoPort)]
	c, err := cli.DialTunnel(ctx, operator(d), first)
	must(t, err)
	must(t, roundTrip(c, 10000))
	c.Close()

	// Move the device to another port: the old handle dies, a new one works.
	other, err := demo.StartEcho("127.0.0.1:0")
	must(t, err)
	defer other.Close()
	must(t, d.API.Do(ctx, "PATCH", "/api/devices/"+dev.ID, map[string]any{"ports": []int{other.Addr().Port}}, &dev, tok))
	waitAllowlist(t, d, dev.AllowlistVersion)
	if d.Agent.Allowlist().Allows("localhost", uint16(echoPort)) {
		t.Fatal("agent still allows the removed port")
	}
	wantRefusal(t, operator(d), first, 404, "unknown or revoked handle")
	second := dev.Handles[fmt.Sprint(other.Addr().Port)]
	c, err = cli.DialTunnel(ctx, operator(d), second)
	must(t, err)
	must(t, roundTrip(c, 10000))
	c.Close()

	var del struct {
		AllowlistVersion int64 `json:"allowlist_version"`
	}
	must(t, d.API.Do(ctx, "DELETE", "/api/devices/"+dev.ID, nil, &del, tok))
	waitAllowlist(t, d, del.AllowlistVersion)
	wantRefusal(t, operator(d), second, 404, "unknown or revoked handle")
	wantAudit(t, d, "device.delete", dev.ID)
}

func waitAllowlist(t testing.TB, d *demo.Demo, version int64) {
	t.Helper()
	if err := testwait.Until(5*time.Second, func() error {
		if v := d.Agent.Allowlist().Version(); v < version {
			return fmt.Errorf("agent holds allowlist v%d, want v%d", v, version)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestLegacyHandleResolvesUntilExpiry(t *testing.T) {
	d := startDemo(t)
	ctx := context.Background()
	st := d.Relay.Store()
	port := d.Echo.Addr().Port
	live, dead := time.Now().Add(time.Hour), time.Now().Add(-time.Second)
	must(t, st.InsertHandle(ctx, store.Handle{Handle: "h-86c2037a51fb", TenantID: d.Info.TenantID, DeviceID: d.Info.DeviceID, Port: port, ExpiresAt: &live, CreatedAt: time.Now()}))
	must(t, st.InsertHandle(ctx, store.Handle{Handle: "h-0000000000aa", TenantID: d.Info.TenantID, DeviceID: d.Info.DeviceID, Port: port, ExpiresAt: &dead, CreatedAt: time.Now()}))
	c, err := cli.DialTunnel(ctx, operator(d), "h-86c2037a51fb")
	must(t, err)
	must(t, roundTrip(c, 5000))
	c.Close()
	wantRefusal(t, operator(d), "h-0000000000aa", 404, "unknown or revoked handle")
}

func TestRevokedAgentKickedAndRefused(t *testing.T) {
	d := startDemo(t)
	c, err := cli.DialTunnel(context.Background(), operator(d), d.Info.EchoHandle)
	must(t, err)
	defer c.Close()

	start := time.Now()
	must(t, d.API.Do(context.Background(), "POST", "/api/agents/"+d.Info.AgentID+"/revoke", nil, nil, demo.Admin(d.Info.AdminKey)))
	select {
	case <-d.AgentExited():
	case <-time.After(time.Second):
		t.Fatalf("agent still running %v after revoke", time.Since(start))
	}
	// The open tunnel died with the session.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c); err == nil {
		t.Error("tunnel of a revoked agent ended cleanly; want it cut")
	}
	// Its first reconnect was refused for good, and said why.
	if err := d.AgentErr(); !errors.Is(err, agent.ErrRefused) || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("agent ended with %v, want a permanent revoked refusal", err)
	}
	wantAudit(t, d, "agent.revoke", d.Info.AgentID)
	wantAudit(t, d, "agent.reject_revoked", d.Info.AgentID)
}

func TestRelayRestart(t *testing.T) {
	d := startDemo(t)
	must(t, d.RestartRelay())
	start := time.Now()
	if err := d.WaitAgent(context.Background(), 15*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("agent back %v after the relay restarted", time.Since(start).Round(time.Millisecond))
	c, err := cli.DialTunnel(context.Background(), operator(d), d.Info.EchoHandle)
	must(t, err)
	defer c.Close()
	must(t, roundTrip(c, 1<<20))
}

// No goroutine outlives its tunnel: open and close 50 tunnels, and the
// relay, agent and client are back to the goroutines they had before.
func TestNoGoroutineLeftBehind(t *testing.T) {
	d := startDemo(t)
	c, err := cli.DialTunnel(context.Background(), operator(d), d.Info.EchoHandle)
	must(t, err)
	must(t, roundTrip(c, 100))
	c.Close()
	// Deliberate: the warm-up tunnel's goroutines end a moment after its
	// Close; a late one caught here is only ignored, never flagged.
	time.Sleep(100 * time.Millisecond)
	opts := goleak.IgnoreCurrent()
	for range 50 {
		c, err := cli.DialTunnel(context.Background(), operator(d), d.Info.EchoHandle)
		must(t, err)
		must(t, roundTrip(c, 10000))
		c.Close()
	}
	d.API.Client.CloseIdleConnections()
	goleak.VerifyNone(t, opts)
}

// The agent's heartbeat (every 5 s) carries its byte counters to the
// relay, which shows them on the agents route.
func TestHeartbeatCounters(t *testing.T) {
	d := startDemo(t)
	c, err := cli.DialTunnel(context.Background(), operator(d), d.Info.EchoHandle)
	must(t, err)
	const n = 300_000
	must(t, roundTrip(c, n))
	c.Close()
	if err := testwait.Until(12*time.Second, func() error {
		var agents []struct {
			BytesIn       uint64    `json:"bytes_in"`
			BytesOut      uint64    `json:"bytes_out"`
			LastHeartbeat time.Time `json:"last_heartbeat"`
			Relay         string    `json:"relay"`
		}
		must(t, d.API.Do(context.Background(), "GET", "/api/sites/"+d.Info.SiteID+"/agents", nil, &agents, demo.Bearer(d.Info.Token)))
		if len(agents) == 1 && agents[0].BytesIn >= n && agents[0].BytesOut >= n {
			if agents[0].Relay != "demo-relay" || agents[0].LastHeartbeat.IsZero() {
				t.Fatalf("agent row %+v lacks relay or heartbeat time", agents[0])
			}
			return nil
		}
		return fmt.Errorf("heartbeat counters never reached %d bytes: %+v", n, agents)
	}); err != nil {
		t.Fatal(err)
	}
}

// Deleting a device ends its open tunnels, not only future ones.
func TestDeviceDeleteCutsOpenTunnels(t *testing.T) {
	d := startDemo(t)
	other, err := demo.StartEcho("127.0.0.1:0")
	must(t, err)
	defer other.Close()
	var dev struct {
		ID      string            `json:"id"`
		Handles map[string]string `json:"handles"`
	}
	port := other.Addr().Port
	must(t, d.API.Do(context.Background(), "POST", "/api/sites/"+d.Info.SiteID+"/devices", map[string]any{"host": "127.0.0.1", "ports": []int{port}}, &dev, demo.Bearer(d.Info.Token)))
	must(t, d.WaitAgent(context.Background(), 5*time.Second))
	c, err := cli.DialTunnel(context.Background(), operator(d), dev.Handles[fmt.Sprint(port)])
	must(t, err)
	defer c.Close()
	must(t, d.API.Do(context.Background(), "DELETE", "/api/devices/"+dev.ID, nil, nil, demo.Bearer(d.Info.Token)))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("tunnel of a deleted device: %v, want it cut", err)
	}
}

// TestAgentsListUDPDrops: GET /api/agents carries each connected agent's
// count of camera datagrams its UDP relays lost, as its heartbeat says.
func TestAgentsListUDPDrops(t *testing.T) {
	d := startDemo(t)
	if err := testwait.Until(20*time.Second, func() error {
		var page struct {
			Items []struct {
				ID            string     `json:"id"`
				LastHeartbeat *time.Time `json:"last_heartbeat"`
				UDPDrops      *uint64    `json:"udp_drops"`
			} `json:"items"`
		}
		must(t, d.API.Do(context.Background(), "GET", "/api/agents", nil, &page, demo.Bearer(d.Info.Token)))
		if len(page.Items) != 1 || page.Items[0].LastHeartbeat == nil {
			return fmt.Errorf("no heartbeat yet: %+v", page.Items)
		}
		a := page.Items[0]
		if a.UDPDrops == nil {
			t.Fatalf("agent %s listed without udp_drops", a.ID)
		}
		if want := d.Agent.Counters().UDPDrops; *a.UDPDrops != want {
			return fmt.Errorf("udp_drops %d, the agent counts %d", *a.UDPDrops, want)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
