package fleet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/testnet"
	"github.com/nanodems/connector/internal/testwait"
)

// TestFleetRestartAll kills -9 the three relays at once under open
// tunnels (a WebSocket tunnel through each relay, two streams through a
// running `nanodems-tunnel run`) and API writes through each, then starts
// them again with the same flags and data. Every open tunnel must end with
// an error (not a clean EOF) after carrying exactly the bytes it echoed;
// once the relays answer ready, every agent must be back, named by every
// relay's agents list as held by the relay that holds it, and new tunnels
// must work through the WebSocket and through the same nanodems-tunnel,
// which reconnects by itself. The figures go to docs/ha.md.
func TestFleetRestartAll(t *testing.T) {
	ctx := context.Background()
	root, dsn, in, relays := startFleet(t, "r1", "r2", "r3")
	r1, r2, r3 := relays[0], relays[1], relays[2]
	echo, err := demo.StartEcho("127.0.0.1:0")
	must(t, err)
	t.Cleanup(func() { echo.Close() })
	port := echo.Addr().Port
	provision(t, r1, &in, port, 9) // no page: port 9 stands in
	agents := []*agentProc{
		startAgent(t, root, "agent-1a", r1, in.pin, in.adminKey, in.site1, []*relayProc{r1, r2, r3}),
		startAgent(t, root, "agent-1b", r2, in.pin, in.adminKey, in.site1, []*relayProc{r2, r3, r1}),
		startAgent(t, root, "agent-2", r3, in.pin, in.adminKey, in.site2, []*relayProc{r3, r1, r2}),
	}
	testwait.For(t, 30*time.Second, "three agents online", func() bool { return agentsBack(relays, in, agents) == nil })
	op := func(r *relayProc) cli.Relay { return cli.Relay{URL: r.url, Token: in.token, Pin: in.pin} }

	var sess struct {
		Token string `json:"token"`
	}
	must(t, r1.apiClient().Do(ctx, "POST", "/api/cli/sessions", map[string]any{"site_ids": []string{in.site1, in.site2}, "label": "restart all"}, &sess, demo.Bearer(in.token)))
	bins, _ := binaries()
	tunnel := start(t, root, "nanodems-tunnel", nil, filepath.Join(bins, "nanodems-tunnel"), "run",
		"--relay", r1.url+","+r2.url+","+r3.url, "--token", sess.Token, "--ca-pin", in.pin, "--log-level", "debug")
	cliAddrs := []string{net.JoinHostPort(in.loopback1, strconv.Itoa(port)), net.JoinHostPort(in.loopback2, strconv.Itoa(port))}
	dialCLI := func(addr string) func() error {
		return func() error { return roundTripOnce(net.Dial("tcp", addr)) }
	}
	for _, a := range cliAddrs {
		must(t, testwait.Until(30*time.Second, dialCLI(a)))
	}

	// Open tunnels: through each relay by WebSocket, through the CLI to
	// each site.
	var streams []*stream
	for i, r := range relays {
		handle := []string{in.echo1, in.echo1, in.echo2}[i]
		c, err := cli.DialTunnel(ctx, op(r), handle)
		must(t, err)
		streams = append(streams, pump("WebSocket tunnel via "+r.node, c))
	}
	for _, a := range cliAddrs {
		c, err := net.Dial("tcp", a)
		must(t, err)
		streams = append(streams, pump("nanodems-tunnel to "+a, c))
	}
	for _, s := range streams {
		testwait.For(t, 30*time.Second, s.name+" echoes", func() bool { return s.echoed() >= 64<<10 })
	}
	var writers []*writer
	for _, r := range relays {
		writers = append(writers, startWriter(t, r, in.token, in.site1, 5))
	}

	killed := time.Now()
	var wg sync.WaitGroup
	for _, r := range relays {
		wg.Go(r.kill)
	}
	wg.Wait()
	for _, s := range streams {
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			s.c.Close()
			<-s.done
			t.Fatalf("%s still open 30 s after the kill", s.name)
		}
		// io.Copy and io.ReadFull take exactly these for a finished stream.
		if s.err == nil || s.err == io.EOF || s.err == io.ErrUnexpectedEOF || strings.Contains(s.err.Error(), "differ") {
			t.Fatalf("%s ended with %v, want a cut", s.name, s.err)
		}
		t.Logf("%s: cut %v after the kill (%v); %d bytes echoed intact before, sha256 %x",
			s.name, s.ended.Sub(killed).Round(time.Millisecond), s.err, s.n, s.sum[:8])
	}
	for _, r := range relays {
		r.client.CloseIdleConnections()
	}

	restarted := time.Now()
	for _, r := range relays {
		r.proc = start(t, root, r.node+"-restarted", []string{"NANODEMS_DATABASE=" + dsn}, r.cmd.Path, r.cmd.Args[1:]...)
	}
	ready := map[string]time.Duration{}
	testwait.For(t, 60*time.Second, "the three relays ready again", func() bool {
		for _, r := range relays {
			if !r.running() {
				t.Fatalf("%s exited after its restart:\n%s", r.node, r.log())
			}
			if _, ok := ready[r.node]; !ok && healthz(t, r, "ready") == 200 {
				r.up = time.Now()
				ready[r.node] = r.up.Sub(restarted)
			}
		}
		return len(ready) == len(relays)
	})
	allReady := time.Now()

	// What must work again, each on its own from allReady.
	type check struct {
		what string
		try  func() error
		took time.Duration
		err  error
	}
	checks := []*check{{what: "every agent back", try: func() error { return agentsBack(relays, in, agents) }}}
	for _, r := range relays {
		for _, h := range []string{in.echo1, in.echo2} {
			checks = append(checks, &check{what: "WebSocket tunnel to " + h + " via " + r.node, try: func() error {
				return roundTripOnce(cli.DialTunnel(ctx, op(r), h))
			}})
		}
	}
	for _, a := range cliAddrs {
		checks = append(checks, &check{what: "nanodems-tunnel to " + a, try: dialCLI(a)})
	}
	for _, c := range checks {
		wg.Go(func() {
			c.err = testwait.Until(60*time.Second, c.try)
			c.took = time.Since(allReady)
		})
	}
	wg.Wait()
	var worst time.Duration
	for _, c := range checks {
		if c.err != nil || c.took > 30*time.Second {
			t.Fatalf("%s: %v after the relays were ready: %v", c.what, c.took, c.err)
		}
		worst = max(worst, c.took)
		t.Logf("%s: %v after the last relay was ready", c.what, c.took.Round(time.Millisecond))
	}
	t.Logf("kill -9 of the three relays; started again %v after the kill, ready %v after their start (%v); everything back %v after the last was ready (%v after the kill)",
		restarted.Sub(killed).Round(time.Millisecond), allReady.Sub(restarted).Round(time.Millisecond), ready, worst.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))

	for _, w := range writers {
		n := w.checkPresent(t, r2, in.token)
		t.Logf("%d writes acknowledged by %s before the kill, all present", n, w.via.node)
	}
	for _, a := range agents {
		t.Logf("%s reconnect waits after the kill: %s", a.name, waits(a.log(), `msg="session ended; reconnecting"`, " in="))
	}
	t.Logf("nanodems-tunnel reconnect waits: %s", waits(tunnel.log(), "relay", " retry_in="))
}

// agentsBack is nil once every agent's session is held by a relay and
// every relay's agents list names that relay for it.
func agentsBack(relays []*relayProc, in installation, agents []*agentProc) error {
	lists := map[string]map[string]agentRow{}
	holder := map[string]string{}
	for _, r := range relays {
		for _, site := range []string{in.site1, in.site2} {
			rows, err := listAgents(r, in.token, site)
			if err != nil {
				return err
			}
			for id, row := range rows {
				if lists[r.node] == nil {
					lists[r.node] = map[string]agentRow{}
				}
				lists[r.node][id] = row
				if row.Online && row.Relay == r.node && !row.ConnectedAt.IsZero() {
					holder[id] = r.node
				}
			}
		}
	}
	for _, a := range agents {
		if holder[a.id] == "" {
			return fmt.Errorf("%s held by no relay", a.name)
		}
		for node, rows := range lists {
			if row := rows[a.id]; !row.Online || row.Relay != holder[a.id] {
				return fmt.Errorf("%s held by %s, listed on %s as %+v", a.name, holder[a.id], node, row)
			}
		}
	}
	return nil
}

// roundTripOnce checks 64 KiB each way through a new tunnel.
func roundTripOnce(c net.Conn, err error) error {
	if err != nil {
		return err
	}
	defer c.Close()
	return testnet.RoundTrip(c, 64<<10)
}

// waits lists the values of attr on the log lines that contain msg.
func waits(log, msg, attr string) string {
	var out []string
	for line := range strings.Lines(log) {
		if !strings.Contains(line, msg) {
			continue
		}
		if _, v, ok := strings.Cut(line, attr); ok {
			out = append(out, strings.Fields(v)[0])
		}
	}
	return strings.Join(out, ", ")
}

// stream echoes chunks of pseudo-random bytes through c, each checked
// against what was sent, until c fails.
type stream struct {
	name  string
	c     net.Conn
	mu    sync.Mutex
	n     int64 // bytes echoed back intact
	sum   []byte
	err   error
	ended time.Time
	done  chan struct{}
}

func pump(name string, c net.Conn) *stream {
	s := &stream{name: name, c: c, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer c.Close()
		h := sha256.New()
		gen := rand.NewChaCha8(sha256.Sum256([]byte(name)))
		out, back := make([]byte, 8<<10), make([]byte, 8<<10)
		// 8 KiB every 5 ms: traffic in flight at the kill without
		// taking the shared machine's CPU.
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		var err error
		for err == nil {
			gen.Read(out)
			if _, err = c.Write(out); err != nil {
				break
			}
			if _, err = io.ReadFull(c, back); err != nil {
				break
			}
			if !bytes.Equal(out, back) {
				err = fmt.Errorf("echoed bytes differ from those sent after %d", s.echoed())
				break
			}
			h.Write(back)
			s.mu.Lock()
			s.n += int64(len(back))
			s.mu.Unlock()
			<-tick.C
		}
		s.mu.Lock()
		s.err, s.ended, s.sum = err, time.Now(), h.Sum(nil)
		s.mu.Unlock()
	}()
	return s
}

func (s *stream) echoed() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}
