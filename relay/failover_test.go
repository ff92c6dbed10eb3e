package relay_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nanodems/connector/agent"
	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/pipe"
	"github.com/nanodems/connector/internal/relaydial"
	"github.com/nanodems/connector/internal/testwait"
	"github.com/nanodems/connector/relay"
)

// The tests here run two relays of one installation in this process: the
// demo's ("demo-relay", 127.0.0.1) and a peer ("relay-b", 127.0.0.3) on
// the same data directory, so the same SQLite file, Agent CA and API key:
// identical pods, as the guide runs them.

// startPair starts the demo and, when its agent is enrolled and before
// it runs, the peer relay; peer then sets the agent's relay list.
func startPair(t *testing.T, peer func(c *agent.Config, b *relay.Server)) (*demo.Demo, *relay.Server) {
	t.Helper()
	dir := t.TempDir()
	var b *relay.Server
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d, err := demo.Start(ctx, demo.Options{DataDir: dir, Logger: quietLogger(), Agent: func(c *agent.Config) {
		b = startPeer(t, filepath.Join(dir, "relay"))
		peer(c, b)
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d, b
}

// startPeer starts relay-b on dataDir, on 127.0.0.3.
func startPeer(t *testing.T, dataDir string) *relay.Server {
	t.Helper()
	s, err := relay.New(relay.Config{DataDir: dataDir, APIAddr: "127.0.0.3:0", AgentAddr: "127.0.0.3:0", RTSPAddr: "off", NodeName: "relay-b", Logger: quietLogger(), MaxConnsPerAddr: -1})
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

// enrolledAddr is the agent listener the agent in dir enrolled with.
func enrolledAddr(t *testing.T, dir string) string {
	id, err := agent.LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	return id.RelayAddr
}

func apiAddr(s *relay.Server) netip.AddrPort {
	return netip.MustParseAddrPort(strings.TrimPrefix(s.APIURL(), "https://"))
}

// waitRelay waits until the agent's newest session is on node.
func waitRelay(t *testing.T, a *agent.Agent, node string) {
	t.Helper()
	testwait.For(t, 30*time.Second, "the agent on "+node, func() bool { return a.Relay() == node && a.Connected() })
}

// dialPlanWorks waits until a new connection through the CLI session
// carries 1 MiB both ways, checked.
func dialPlanWorks(t *testing.T, tun *cli.Tunnel, port uint16) {
	t.Helper()
	if err := testwait.Until(30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := tun.DialPlan(ctx, "127.0.0.2", port)
		if err != nil {
			return err
		}
		defer c.Close()
		return roundTrip(c, 1<<20)
	}); err != nil {
		t.Fatalf("no working connection through the CLI session: %v", err)
	}
}

// tunnelWorks waits until a new tunnel through the relay at url carries
// 1 MiB both ways, checked.
func tunnelWorks(t *testing.T, d *demo.Demo, url string) {
	t.Helper()
	r := operator(d)
	r.URL = url
	if err := testwait.Until(30*time.Second, func() error {
		c, err := cli.DialTunnel(context.Background(), r, d.Info.EchoHandle)
		if err != nil {
			return err
		}
		defer c.Close()
		return roundTrip(c, 1<<20)
	}); err != nil {
		t.Fatalf("no working tunnel through %s: %v", url, err)
	}
}

// openCLI opens a CLI session over the demo's site whose relays are
// urls, with dialer.
func openCLI(t *testing.T, d *demo.Demo, urls []string, dialer *relaydial.Dialer) *cli.Tunnel {
	t.Helper()
	var s struct {
		Token string `json:"token"`
	}
	must(t, d.API.Do(context.Background(), "POST", "/api/cli/sessions", map[string]any{"site_ids": []string{d.Info.SiteID}, "label": "failover"}, &s, demo.Bearer(d.Info.Token)))
	tun, err := cli.Open(context.Background(), cli.Options{
		Relay:  cli.Relay{URL: urls[0], URLs: urls[1:], Token: s.Token, Pin: d.Info.CAPin, Dialer: dialer},
		NoBind: true, Logger: quietLogger(),
	})
	must(t, err)
	t.Cleanup(func() { tun.Close() })
	return tun
}

// pausedTransfer sends n random bytes through c to an echo target in two
// halves, the second once resume is closed, and reports whether the
// echo came back whole and sha256-equal.
func pausedTransfer(c net.Conn, n int64, halfway chan<- struct{}, resume <-chan struct{}) error {
	cw := c.(interface{ CloseWrite() error })
	sent := sha256.New()
	errc := make(chan error, 1)
	go func() {
		src := io.TeeReader(io.LimitReader(rand.Reader, n), sent)
		_, err := io.CopyN(c, src, n/2)
		close(halfway)
		if err == nil {
			<-resume
			_, err = io.Copy(c, src)
		}
		if err == nil {
			err = cw.CloseWrite()
		}
		errc <- err
	}()
	got := sha256.New()
	m, err := io.Copy(got, c)
	if werr := <-errc; werr != nil {
		return fmt.Errorf("write: %w", werr)
	}
	if err != nil {
		return fmt.Errorf("read after %d bytes: %w", m, err)
	}
	if m != n {
		return fmt.Errorf("echoed %d bytes, sent %d", m, n)
	}
	if !bytes.Equal(sent.Sum(nil), got.Sum(nil)) {
		return errors.New("sha256 of echoed bytes differs from sent bytes")
	}
	return nil
}

// A relay that drains stops taking agents and operators, tells its agent
// to move (it does, to the other relay), lets a tunnel that was open
// finish its transfer, sends its CLI sessions elsewhere between two
// connections, and ends once nothing runs through it.
func TestDrainMovesAgentAndFinishesTunnel(t *testing.T) {
	// A stagger no test waits out: the second relay is tried only when
	// the first fails, so each client starts on relay A for certain.
	first := &relaydial.Dialer{Stagger: time.Hour}
	d, b := startPair(t, func(c *agent.Config, b *relay.Server) {
		c.RelayAddrs = []string{enrolledAddr(t, c.Dir), b.AgentAddr()}
		c.Dialer = first
	})
	a := d.Relay
	if d.Agent.Relay() != "demo-relay" {
		t.Fatalf("agent on %q, want demo-relay", d.Agent.Relay())
	}
	tun := openCLI(t, d, []string{a.APIURL(), b.APIURL()}, first)
	echo := uint16(d.Echo.Addr().Port)
	dialPlanWorks(t, tun, echo)
	if got := tun.RelayAddr(); got != apiAddr(a) {
		t.Fatalf("CLI session on %v, want relay A %v", got, apiAddr(a))
	}
	if r := relay.ReadyReason(a); r != "" {
		t.Fatalf("relay A not ready before the drain: %s", r)
	}
	rtspURL := mintRTSP(t, d, demo.Bearer(d.Info.Token), d.Info.EchoHandle, "/live", 120)

	// A tunnel through A, half its bytes through before the drain.
	c, err := cli.DialTunnel(context.Background(), operator(d), d.Info.EchoHandle)
	must(t, err)
	defer c.Close()
	const size = 16 << 20
	halfway, resume := make(chan struct{}), make(chan struct{})
	transfer := make(chan error, 1)
	go func() { transfer <- pausedTransfer(c, size, halfway, resume) }()
	<-halfway

	start := time.Now()
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		drained <- a.Drain(ctx)
	}()
	waitRelay(t, d.Agent, "relay-b")
	t.Logf("agent on relay-b %v after the drain began", time.Since(start).Round(time.Millisecond))
	if r := relay.ReadyReason(a); !strings.HasPrefix(r, "draining") {
		t.Errorf("relay A's readiness while draining: %q, want draining", r)
	}
	// Nothing new is taken: neither listener accepts.
	for _, addr := range []string{a.AgentAddr(), apiAddr(a).String()} {
		if conn, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
			conn.Close()
			t.Errorf("relay A still accepts on %s while draining", addr)
		}
	}
	// The RTSP gateway's listener stays until Close; it turns new
	// sessions away.
	if code, hdr := rtspRequest(t, a.RTSPAddr(), "DESCRIBE", rtspURL); code != 503 || !strings.Contains(hdr.Get("X-Nanodems-Error"), "draining") {
		t.Errorf("RTSP DESCRIBE while draining: %d %q, want 503 draining", code, hdr.Get("X-Nanodems-Error"))
	}
	select {
	case err := <-drained:
		t.Fatalf("drain ended (%v) with a tunnel still open", err)
	default:
	}

	// The rest of the transfer goes through the old session, to the end.
	close(resume)
	if err := <-transfer; err != nil {
		t.Fatalf("tunnel open during the drain: %v", err)
	}
	c.Close()
	if err := <-drained; err != nil {
		t.Fatalf("drain: %v", err)
	}
	t.Logf("drained %v after it began, a %d MiB transfer finished in it", time.Since(start).Round(time.Millisecond), size>>20)
	a.Close()

	// Everything goes on through relay B.
	tunnelWorks(t, d, b.APIURL())
	dialPlanWorks(t, tun, echo)
	if got := tun.RelayAddr(); got != apiAddr(b) {
		t.Errorf("CLI session on %v, want relay B %v", got, apiAddr(b))
	}
	if n := tun.MuxConnections(); n < 2 {
		t.Errorf("%d mux connections, want a reconnect", n)
	}
}

// gate stands for a relay address that is dead at first (it accepts TCP
// and never answers TLS, as a wedged relay or a black-holing middlebox
// does) and comes back later (open: it forwards to a live relay).
type gate struct {
	ln     net.Listener
	mu     sync.Mutex
	to     string // "" while dead
	held   []net.Conn
	n      int // connections accepted
	wg     sync.WaitGroup
	closed bool
}

func startGate(t *testing.T, ip string) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln}
	g.wg.Add(1)
	go g.serve()
	t.Cleanup(g.stop)
	return g
}

func (g *gate) addr() string { return g.ln.Addr().String() }

// accepted counts the connections the gate took.
func (g *gate) accepted() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}

// open makes the gate forward new connections to addr.
func (g *gate) open(addr string) {
	g.mu.Lock()
	g.to = addr
	g.mu.Unlock()
}

func (g *gate) serve() {
	defer g.wg.Done()
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		g.mu.Lock()
		to := g.to
		if g.closed {
			g.mu.Unlock()
			c.Close()
			return
		}
		g.held = append(g.held, c)
		g.n++
		g.mu.Unlock()
		if to == "" {
			continue // silent: held until the client gives up or stop
		}
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			up, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				return
			}
			g.mu.Lock()
			g.held = append(g.held, up)
			g.mu.Unlock()
			pipe.Join(c, up, nil, nil)
		}()
	}
}

func (g *gate) stop() {
	g.ln.Close()
	g.mu.Lock()
	g.closed = true
	for _, c := range g.held {
		c.Close()
	}
	g.mu.Unlock()
	g.wg.Wait()
}

// Given two relays where the first is dead (it never answers TLS), the
// agent and a CLI session connect to the second; when that one is
// closed (not drained: lost), both reconnect to the first, back by then.
func TestFailoverFirstRelayDead(t *testing.T) {
	agentGate, apiGate := startGate(t, "127.0.0.4"), startGate(t, "127.0.0.4")
	var enrolled string
	start := time.Now()
	d, b := startPair(t, func(c *agent.Config, b *relay.Server) {
		enrolled = enrolledAddr(t, c.Dir)
		c.RelayAddrs = []string{agentGate.addr(), b.AgentAddr()}
		start = time.Now()
	})
	if d.Agent.Relay() != "relay-b" {
		t.Fatalf("agent on %q, want relay-b", d.Agent.Relay())
	}
	t.Logf("agent connected to the second relay %v after it started, the first one silent", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	tun := openCLI(t, d, []string{"https://" + apiGate.addr(), b.APIURL()}, nil)
	t.Logf("CLI session open %v after it started, the first relay silent", time.Since(start).Round(time.Millisecond))
	if got := tun.RelayAddr(); got != apiAddr(b) {
		t.Fatalf("CLI session on %v, want relay B %v", got, apiAddr(b))
	}
	echo := uint16(d.Echo.Addr().Port)
	dialPlanWorks(t, tun, echo)

	// The first relay comes back (the demo's relay A behind the gates);
	// relay B is lost.
	agentGate.open(enrolled)
	apiGate.open(apiAddr(d.Relay).String())
	start = time.Now()
	b.Close()
	waitRelay(t, d.Agent, "demo-relay")
	t.Logf("agent back on the first relay %v after the second closed", time.Since(start).Round(time.Millisecond))
	tunnelWorks(t, d, d.Info.RelayURL)
	dialPlanWorks(t, tun, echo)
	t.Logf("CLI connection working again %v after the second relay closed", time.Since(start).Round(time.Millisecond))
	if got := tun.RelayAddr().String(); got != apiGate.addr() {
		t.Errorf("CLI session on %v, want the first relay %s", got, apiGate.addr())
	}
}

// Enrollment with several relays goes to the first that answers, keeps
// every relay's agent listener, and stops at a relay that answers with a
// refusal: the token is good once, and is not offered to the next.
func TestEnrollSeveralRelays(t *testing.T) {
	d := startDemo(t)
	dead := "https://" + closedPort(t, "127.0.0.5")
	_, agentPort, _ := net.SplitHostPort(d.Relay.AgentAddr())
	o := agent.EnrollOptions{RelayURL: dead, RelayURLs: []string{d.Info.RelayURL}, Token: mintEnrollment(t, d), Pin: d.Info.CAPin, Dir: t.TempDir()}
	id, err := agent.Enroll(context.Background(), o)
	must(t, err)
	want := []string{d.Relay.AgentAddr(), net.JoinHostPort("127.0.0.5", agentPort)}
	if id.RelayURL != d.Info.RelayURL || strings.Join(id.RelayAddrs, ",") != strings.Join(want, ",") || id.RelayAddr != want[0] {
		t.Fatalf("enrolled with %s, agent listeners %v (%s); want %s, %v", id.RelayURL, id.RelayAddrs, id.RelayAddr, d.Info.RelayURL, want)
	}
	if len(id.RelayURLs) != 2 {
		t.Errorf("relay URLs kept: %v", id.RelayURLs)
	}

	// The same token again: the first relay answers (already used), and
	// the second, which would answer the same, is not asked.
	other := startGate(t, "127.0.0.6")
	o.RelayURL, o.RelayURLs, o.Dir = d.Info.RelayURL, []string{"https://" + other.addr()}, t.TempDir()
	_, err = agent.Enroll(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("second enrollment: %v, want 'already used'", err)
	}
	if other.accepted() != 0 {
		t.Errorf("the second relay was asked after the first refused")
	}

	// No relay answers: one sentence naming each.
	o.RelayURL, o.RelayURLs, o.Dir = dead, []string{"https://" + closedPort(t, "127.0.0.6")}, t.TempDir()
	_, err = agent.Enroll(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "no relay answered; tried "+dead) || strings.Count(err.Error(), "connection refused") != 2 {
		t.Fatalf("enrollment with no relay up: %v", err)
	}
}

// closedPort is an address on ip where nothing listens.
func closedPort(t *testing.T, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}
