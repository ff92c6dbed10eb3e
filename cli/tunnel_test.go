package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/testnet"
	"github.com/nanodems/connector/internal/testwait"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func startDemo(t testing.TB) *demo.Demo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	level := slog.LevelError
	if os.Getenv("NANODEMS_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	d, err := demo.Start(ctx, demo.Options{DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

type session struct {
	ID    string `json:"id"`
	Token string `json:"token"`
}

// mint mints a CLI session over the demo's site.
func mint(t testing.TB, d *demo.Demo) session {
	t.Helper()
	var s session
	must(t, d.API.Do(context.Background(), "POST", "/api/cli/sessions", map[string]any{"site_ids": []string{d.Info.SiteID}, "label": "test"}, &s, demo.Bearer(d.Info.Token)))
	return s
}

// logBuffer collects the tunnel's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if os.Getenv("NANODEMS_TEST_LOG") != "" {
		os.Stderr.Write(p)
	}
	return l.b.Write(p)
}

func (l *logBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitLog waits until the log holds s.
func (l *logBuffer) wait(t testing.TB, s string) {
	t.Helper()
	if err := testwait.Until(10*time.Second, func() error {
		if l.count(s) == 0 {
			return fmt.Errorf("no log line %q in:\n%s", s, l)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// open opens a tunnel for token with options adjusted by opt.
func open(t testing.TB, d *demo.Demo, token string, opt func(*cli.Options)) (*cli.Tunnel, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	o := cli.Options{
		Relay:  cli.Relay{URL: d.Info.RelayURL, Token: token, Pin: d.Info.CAPin},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if opt != nil {
		opt(&o)
	}
	tun, err := cli.Open(context.Background(), o)
	must(t, err)
	t.Cleanup(func() { tun.Close() })
	return tun, logs
}

// socks5 connects through a SOCKS5 proxy; with domain it sends the host as
// a name, as curl --socks5-hostname does. A refusal is its reply code.
func socks5(proxy, host string, port int, domain bool) (net.Conn, error) {
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		return nil, err
	}
	req := []byte{5, 1, 0}
	if domain {
		req = append(req, 3, byte(len(host)))
		req = append(req, host...)
	} else {
		ip := net.ParseIP(host).To4()
		req = append(append(req, 1), ip...)
	}
	req = append(req, byte(port>>8), byte(port))
	// Greeting and request in one write: the proxy must not lose the
	// request it has buffered while answering the greeting.
	if _, err := c.Write(append([]byte{5, 1, 0}, req...)); err != nil {
		c.Close()
		return nil, err
	}
	var resp [12]byte
	if _, err := io.ReadFull(c, resp[:2]); err != nil || resp[1] != 0 {
		c.Close()
		return nil, fmt.Errorf("greeting answer %v: %v", resp[:2], err)
	}
	if _, err := io.ReadFull(c, resp[2:12]); err != nil {
		c.Close()
		return nil, fmt.Errorf("request answer: %w", err)
	}
	if resp[3] != 0 {
		c.Close()
		return nil, socksReply(resp[3])
	}
	return c, nil
}

type socksReply byte

func (r socksReply) Error() string { return fmt.Sprintf("socks reply %d", byte(r)) }

// connect opens an HTTP CONNECT tunnel; a refusal is its status line.
func connect(proxy, target string) (net.Conn, error) {
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: test\r\n\r\n", target, target)
	// Read the answer byte by byte so no tunnel byte is buffered here.
	var head []byte
	b := make([]byte, 1)
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		if _, err := c.Read(b); err != nil {
			c.Close()
			return nil, fmt.Errorf("CONNECT answer %q: %w", head, err)
		}
		head = append(head, b[0])
	}
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 200 ")) {
		c.Close()
		line, _, _ := strings.Cut(string(head), "\r\n")
		return nil, errors.New(line)
	}
	return c, nil
}

func TestRunServesPlanThreeWays(t *testing.T) { forTransports(t, testRunServesPlanThreeWays) }

func testRunServesPlanThreeWays(t *testing.T, transport string) {
	d := startDemo(t)
	s := mint(t, d)
	var out bytes.Buffer
	tun, logs := open(t, d, s.Token, func(o *cli.Options) { o.Socks = "127.0.0.1:0"; o.Out = &out; o.Transport = transport })
	if tun.Transport() != transport {
		t.Fatalf("transport %q, want %q", tun.Transport(), transport)
	}
	echo := d.Echo.Addr().Port
	addr := fmt.Sprintf("127.0.0.2:%d", echo)

	if es := tun.Entries(); len(es) != 2 {
		t.Fatalf("entries %+v, want the demo device's two ports", es)
	}
	if m := tun.PlanAddrs(); len(m) != 2 || !m[netip.MustParseAddrPort(addr)] {
		t.Fatalf("PlanAddrs %v lacks %s", m, addr)
	}
	for _, want := range []string{"LABEL", "LOCAL ADDRESS", "Demo camera", addr, d.Info.DeviceID, "listening", "SOCKS5 and HTTP CONNECT proxy on " + tun.ProxyAddr().String()} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	proxy := tun.ProxyAddr().String()

	t.Run("OS listener", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		must(t, err)
		defer c.Close()
		must(t, testnet.RoundTrip(c, 8<<20))
	})
	t.Run("SOCKS5 hostname", func(t *testing.T) {
		c, err := socks5(proxy, "127.0.0.2", echo, true)
		must(t, err)
		defer c.Close()
		must(t, testnet.RoundTrip(c, 4<<20))
	})
	t.Run("SOCKS5 IPv4", func(t *testing.T) {
		c, err := socks5(proxy, "127.0.0.2", echo, false)
		must(t, err)
		defer c.Close()
		must(t, testnet.RoundTrip(c, 1<<20))
	})
	t.Run("HTTP CONNECT", func(t *testing.T) {
		c, err := connect(proxy, addr)
		must(t, err)
		defer c.Close()
		must(t, testnet.RoundTrip(c, 4<<20))
	})
	t.Run("DialPlan", func(t *testing.T) {
		c, err := tun.DialPlan(context.Background(), "127.0.0.2", uint16(echo))
		must(t, err)
		defer c.Close()
		if c.RemoteAddr().String() != addr {
			t.Errorf("RemoteAddr %s, want %s", c.RemoteAddr(), addr)
		}
		must(t, testnet.RoundTrip(c, 4<<20))
	})
	t.Run("unknown addresses", func(t *testing.T) {
		for range 2 {
			if _, err := socks5(proxy, "127.0.0.2", 1, true); err != socksReply(2) {
				t.Errorf("SOCKS5 to 127.0.0.2:1: %v, want reply 2 (not allowed)", err)
			}
		}
		if _, err := connect(proxy, "127.0.0.9:80"); err == nil || !strings.HasPrefix(err.Error(), "HTTP/1.1 403 ") {
			t.Errorf("CONNECT to 127.0.0.9:80: %v, want 403", err)
		}
		if _, err := connect(proxy, "example.com:443"); err == nil || !strings.HasPrefix(err.Error(), "HTTP/1.1 403 ") {
			t.Errorf("CONNECT to a name: %v, want 403", err)
		}
		_, err := tun.DialPlan(context.Background(), "127.0.0.9", 80)
		var ue *cli.UnknownAddrError
		if !errors.As(err, &ue) {
			t.Errorf("DialPlan outside the plan: %v", err)
		}
		if n := logs.count(`rejecting unknown loopback 127.0.0.2:1"`); n != 1 {
			t.Errorf("unknown address logged %d times, want once:\n%s", n, logs)
		}
		logs.wait(t, "rejecting unknown loopback 127.0.0.9:80")
	})
	t.Run("camera web page through the listener", func(t *testing.T) {
		var dev struct {
			Ports []int `json:"ports"`
		}
		must(t, d.API.Do(context.Background(), "GET", "/api/devices/"+d.Info.DeviceID, nil, &dev, demo.Bearer(d.Info.Token)))
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.2:%d", dev.Ports[0]))
		must(t, err)
		defer c.Close()
		fmt.Fprintf(c, "GET / HTTP/1.0\r\n\r\n")
		line, err := bufio.NewReader(c).ReadString('\n')
		must(t, err)
		if !strings.HasPrefix(line, "HTTP/1.") {
			t.Fatalf("camera answered %q", line)
		}
	})
}

func Test50ConnectionsOneMuxSession(t *testing.T) { forTransports(t, test50ConnectionsOneMuxSession) }

func test50ConnectionsOneMuxSession(t *testing.T, transport string) {
	d := startDemo(t)
	s := mint(t, d)
	tun, _ := open(t, d, s.Token, func(o *cli.Options) { o.Transport = transport })
	addr := fmt.Sprintf("127.0.0.2:%d", d.Echo.Addr().Port)
	const conns = 50
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if err := testnet.RoundTrip(c, 256<<10+int64(i)*1031); err != nil {
				errs <- fmt.Errorf("connection %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := tun.MuxConnections(); n != 1 {
		t.Errorf("%d mux connections, want all 50 on one", n)
	}
	var list []struct {
		Connections int `json:"connections"`
	}
	must(t, d.API.Do(context.Background(), "GET", "/api/sites/"+d.Info.SiteID+"/cli-sessions", nil, &list, demo.Bearer(d.Info.Token)))
	if len(list) != 1 || list[0].Connections != 1 {
		t.Errorf("relay sees %+v, want one session with one connection", list)
	}
}

// addDevice adds a device on 127.0.0.1 with one port to the demo's site
// and returns its id and plan address.
func addDevice(t testing.TB, d *demo.Demo, port int) (string, string) {
	t.Helper()
	var dev struct {
		ID         string `json:"id"`
		LoopbackIP string `json:"loopback_ip"`
	}
	must(t, d.API.Do(context.Background(), "POST", "/api/sites/"+d.Info.SiteID+"/devices", map[string]any{"host": "127.0.0.1", "ports": []int{port}, "label": "added"}, &dev, demo.Bearer(d.Info.Token)))
	must(t, d.WaitAgent(context.Background(), 5*time.Second))
	return dev.ID, net.JoinHostPort(dev.LoopbackIP, strconv.Itoa(port))
}

func TestRefreshAddsAndRemovesEntries(t *testing.T) {
	d := startDemo(t)
	s := mint(t, d)
	var plans atomic.Int32
	tun, logs := open(t, d, s.Token, func(o *cli.Options) {
		o.Refresh = 100 * time.Millisecond
		o.Socks = "127.0.0.1:0"
		o.OnPlan = func([]cli.PlanEntry) { plans.Add(1) }
	})
	other, err := demo.StartEcho("127.0.0.1:0")
	must(t, err)
	defer other.Close()

	id, addr := addDevice(t, d, other.Addr().Port)
	logs.wait(t, "plan: added "+addr)
	logs.wait(t, "listening on "+addr)
	c, err := net.Dial("tcp", addr)
	must(t, err)
	must(t, testnet.RoundTrip(c, 1<<20))
	c.Close()
	if len(tun.Entries()) != 3 || plans.Load() != 2 {
		t.Errorf("%d entries, %d plans seen; want 3 and 2", len(tun.Entries()), plans.Load())
	}

	must(t, d.API.Do(context.Background(), "DELETE", "/api/devices/"+id, nil, nil, demo.Bearer(d.Info.Token)))
	logs.wait(t, "plan: removed "+addr)
	logs.wait(t, "stopped listening on "+addr)
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatalf("%s still accepts after its removal from the plan", addr)
	}
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	if _, err := socks5(tun.ProxyAddr().String(), host, p, true); err != socksReply(2) {
		t.Errorf("SOCKS5 to a removed entry: %v, want reply 2", err)
	}
	logs.wait(t, "rejecting unknown loopback "+addr)
}

// A bind that fails (a stale tunnel holds the port) is logged once,
// retried on every refresh, and heals once the port is free.
func TestBindFailureLoggedOnceAndHeals(t *testing.T) {
	d := startDemo(t)
	_, addr := addDevice(t, d, 554)
	stale, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EACCES) {
		t.Skip("binding port 554 needs root here; TestPrivilegedPortRetried covers the non-root case")
	}
	must(t, err)
	s := mint(t, d)
	_, logs := open(t, d, s.Token, func(o *cli.Options) { o.Refresh = 50 * time.Millisecond })
	logs.wait(t, "cannot bind "+addr+": address already in use")
	time.Sleep(300 * time.Millisecond) // deliberate: several 50 ms refreshes retry the bind, and none may log again
	if n := logs.count("cannot bind " + addr); n != 1 {
		t.Fatalf("bind failure logged %d times, want once:\n%s", n, logs)
	}
	stale.Close()
	logs.wait(t, "listening on "+addr+" (the earlier bind failure is gone)")
	c, err := net.Dial("tcp", addr)
	must(t, err)
	c.Close()
}

// Ports below 1024 need rights an operator may not have; the check is
// injected because CI runs as root. The proxy reaches the port meanwhile.
func TestPrivilegedPortRetried(t *testing.T) {
	d := startDemo(t)
	target, err := demo.StartEcho("127.0.0.1:0")
	must(t, err)
	defer target.Close()
	port := target.Addr().Port
	_, addr := addDevice(t, d, port)
	var privileged atomic.Bool
	privileged.Store(true)
	s := mint(t, d)
	tun, logs := open(t, d, s.Token, func(o *cli.Options) {
		o.Refresh = 50 * time.Millisecond
		o.Socks = "127.0.0.1:0"
		o.Privileged = func(p uint16) bool { return privileged.Load() && int(p) == port }
	})
	logs.wait(t, fmt.Sprintf("cannot bind %s: port %d needs admin rights on this machine; use the --socks proxy instead", addr, port))
	host, _, _ := net.SplitHostPort(addr)
	c, err := socks5(tun.ProxyAddr().String(), host, port, true)
	must(t, err)
	must(t, testnet.RoundTrip(c, 1<<20))
	c.Close()
	time.Sleep(200 * time.Millisecond) // deliberate: several 50 ms refreshes retry the bind, and none may log again
	if n := logs.count("cannot bind " + addr); n != 1 {
		t.Fatalf("bind failure logged %d times, want once", n)
	}
	privileged.Store(false)
	logs.wait(t, "listening on "+addr+" (the earlier bind failure is gone)")
	c, err = net.Dial("tcp", addr)
	must(t, err)
	must(t, testnet.RoundTrip(c, 1<<20))
	c.Close()
}

func TestRevokeEndsRun(t *testing.T) { forTransports(t, testRevokeEndsRun) }

func testRevokeEndsRun(t *testing.T, transport string) {
	d := startDemo(t)
	s := mint(t, d)
	logs := &logBuffer{}
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		done <- cli.Run(ctx, cli.Options{
			Relay:     cli.Relay{URL: d.Info.RelayURL, Token: s.Token, Pin: d.Info.CAPin},
			Logger:    slog.New(slog.NewTextHandler(logs, nil)),
			Transport: transport,
		})
	}()
	logs.wait(t, "listening on 127.0.0.2:")
	start := time.Now()
	must(t, d.API.Do(context.Background(), "DELETE", "/api/cli/sessions/"+s.ID, nil, nil, demo.Bearer(d.Info.Token)))
	select {
	case err := <-done:
		if err == nil || err.Error() != "the relay refused this CLI session: CLI session revoked" {
			t.Fatalf("Run ended with %v", err)
		}
		t.Logf("Run ended %v after the revoke", time.Since(start).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("Run still going 10 s after the revoke")
	}
}

func TestReconnectAfterRelayRestart(t *testing.T) { forTransports(t, testReconnectAfterRelayRestart) }

func testReconnectAfterRelayRestart(t *testing.T, transport string) {
	d := startDemo(t)
	s := mint(t, d)
	tun, logs := open(t, d, s.Token, func(o *cli.Options) { o.NoBind = true; o.Transport = transport })
	echo := uint16(d.Echo.Addr().Port)
	c, err := tun.DialPlan(context.Background(), "127.0.0.2", echo)
	must(t, err)
	must(t, testnet.RoundTrip(c, 1<<20))
	c.Close()

	must(t, d.RestartRelay())
	must(t, d.WaitAgent(context.Background(), 15*time.Second))
	logs.wait(t, "lost the relay connection; reconnecting")
	if err := testwait.Until(30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err = tun.DialPlan(ctx, "127.0.0.2", echo)
		return err
	}); err != nil {
		t.Fatalf("no tunnel after the relay came back: %v\n%s", err, logs)
	}
	must(t, testnet.RoundTrip(c, 1<<20))
	c.Close()
	if n := tun.MuxConnections(); n < 2 {
		t.Errorf("%d mux connections, want a reconnect", n)
	}
	if tun.Transport() != transport {
		t.Errorf("reconnected on %q, want %q", tun.Transport(), transport)
	}
}

func TestOpenRefusals(t *testing.T) {
	d := startDemo(t)
	r := cli.Relay{URL: d.Info.RelayURL, Pin: d.Info.CAPin}
	ctx := context.Background()

	r.Token = d.Info.Token // an nt_ token is not a CLI session
	if _, err := cli.Open(ctx, cli.Options{Relay: r}); err == nil || !strings.Contains(err.Error(), "not a CLI session token") {
		t.Errorf("Open with an nt_ token: %v", err)
	}
	r.Token = "ops_" + strings.Repeat("x", 43)
	_, err := cli.Open(ctx, cli.Options{Relay: r})
	var sr *cli.SessionRefusedError
	if !errors.As(err, &sr) || sr.Reason != "invalid or revoked credential" {
		t.Errorf("Open with an unknown token: %v", err)
	}
	s := mint(t, d)
	r.Token = s.Token
	if _, err := cli.Open(ctx, cli.Options{Relay: r, Socks: "0.0.0.0:0"}); err == nil || !strings.Contains(err.Error(), "loopback address only") {
		t.Errorf("Open with a LAN proxy address: %v", err)
	}
}

// No goroutine outlives its connection: after one warm-up connection each
// way, 30 more through the listener, the proxy and DialPlan leave the
// CLI, relay and agent with the goroutines they had.
func TestNoGoroutineLeftBehind(t *testing.T) { forTransports(t, testNoGoroutineLeftBehind) }

func testNoGoroutineLeftBehind(t *testing.T, transport string) {
	d := startDemo(t)
	s := mint(t, d)
	tun, _ := open(t, d, s.Token, func(o *cli.Options) { o.Socks = "127.0.0.1:0"; o.Transport = transport })
	echo := d.Echo.Addr().Port
	dials := []func() (net.Conn, error){
		func() (net.Conn, error) { return net.Dial("tcp", fmt.Sprintf("127.0.0.2:%d", echo)) },
		func() (net.Conn, error) { return socks5(tun.ProxyAddr().String(), "127.0.0.2", echo, true) },
		func() (net.Conn, error) { return connect(tun.ProxyAddr().String(), fmt.Sprintf("127.0.0.2:%d", echo)) },
		func() (net.Conn, error) { return tun.DialPlan(context.Background(), "127.0.0.2", uint16(echo)) },
	}
	use := func(dial func() (net.Conn, error)) {
		c, err := dial()
		must(t, err)
		must(t, testnet.RoundTrip(c, 10000))
		c.Close()
	}
	for _, dial := range dials {
		use(dial)
	}
	// Deliberate: the warm-up connections' goroutines end a moment after
	// their Close; a late one caught here is only ignored, never flagged.
	time.Sleep(100 * time.Millisecond)
	opts := goleak.IgnoreCurrent()
	for i := range 30 {
		use(dials[i%len(dials)])
	}
	d.API.Client.CloseIdleConnections()
	goleak.VerifyNone(t, opts)
}
