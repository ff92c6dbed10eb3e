//go:build linux

package bpfcount_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nanodems/connector/agent"
	"github.com/nanodems/connector/agent/bpfcount"
	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/syncbuf"
	"github.com/nanodems/connector/internal/testwait"
	"github.com/nanodems/connector/mux"
)

// moved is one checked transfer through a tunnel: what the target
// received and sent, and what the agent counted.
type moved struct {
	targetGot, targetSent uint64
	agent                 mux.Heartbeat
}

// transfer sends up bytes through a tunnel of d to a target of its own,
// which then answers with down bytes, and returns what each side saw
// once the agent has closed the tunnel.
func transfer(ctx context.Context, d *demo.Demo, up, down int64) (moved, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return moved{}, err
	}
	defer ln.Close()
	type served struct {
		got, sent int64
		err       error
	}
	done := make(chan served, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- served{err: err}
			return
		}
		defer c.Close()
		got, err := io.Copy(io.Discard, c)
		var sent int64
		if err == nil {
			sent, err = io.Copy(c, io.LimitReader(pattern{}, down))
		}
		done <- served{got: got, sent: sent, err: err}
	}()

	port := ln.Addr().(*net.TCPAddr).Port
	var dev struct {
		Handles map[string]string `json:"handles"`
	}
	if err := d.API.Do(ctx, "POST", "/api/sites/"+d.Info.SiteID+"/devices", map[string]any{"host": "127.0.0.1", "ports": []int{port}, "label": "counted target"}, &dev, demo.Bearer(d.Info.Token)); err != nil {
		return moved{}, fmt.Errorf("add target: %w", err)
	}
	if err := d.WaitAgent(ctx, 30*time.Second); err != nil {
		return moved{}, err
	}
	c, err := cli.DialTunnel(ctx, cli.Relay{URL: d.Info.RelayURL, Token: d.Info.Token, Pin: d.Info.CAPin}, dev.Handles[strconv.Itoa(port)])
	if err != nil {
		return moved{}, fmt.Errorf("open tunnel: %w", err)
	}
	defer c.Close()
	werr := make(chan error, 1)
	go func() {
		_, err := io.Copy(c, io.LimitReader(pattern{}, up))
		if err == nil {
			err = c.(interface{ CloseWrite() error }).CloseWrite()
		}
		werr <- err
	}()
	back, err := io.Copy(io.Discard, c)
	if err := errors.Join(err, <-werr); err != nil {
		return moved{}, fmt.Errorf("through the tunnel: %w", err)
	}
	s := <-done
	if s.err != nil {
		return moved{}, fmt.Errorf("target: %w", s.err)
	}
	if s.got != up || back != down {
		return moved{}, fmt.Errorf("target got %d of %d bytes, client %d of %d", s.got, up, back, down)
	}
	if err := testwait.Until(30*time.Second, func() error {
		if n := d.Agent.Counters().ActiveStreams; n != 0 {
			return fmt.Errorf("%d tunnels still open at the agent", n)
		}
		return nil
	}); err != nil {
		return moved{}, err
	}
	return moved{targetGot: uint64(s.got), targetSent: uint64(s.sent), agent: d.Agent.Counters()}, nil
}

// pattern is an endless source of non-zero bytes.
type pattern struct{}

var block = func() []byte {
	b := make([]byte, 64<<10)
	rand.Read(b)
	return b
}()

func (pattern) Read(p []byte) (int, error) { return copy(p, block), nil }

// siteCounting is the counting mode the relay shows for the demo's
// agent, from its last heartbeat.
func siteCounting(ctx context.Context, d *demo.Demo) string {
	var agents []struct {
		ID       string `json:"id"`
		Counting string `json:"counting"`
	}
	if err := d.API.Do(ctx, "GET", "/api/sites/"+d.Info.SiteID+"/agents", nil, &agents, demo.Bearer(d.Info.Token)); err != nil {
		return "error: " + err.Error()
	}
	for _, a := range agents {
		if a.ID == d.Info.AgentID {
			return a.Counting
		}
	}
	return ""
}

// agree fails unless a and b differ by at most 1 % of want.
func agree(t *testing.T, what string, a, b uint64, want uint64) {
	t.Helper()
	diff := max(a, b) - min(a, b)
	if float64(diff) > float64(want)/100 {
		t.Errorf("%s: %d and %d differ by %d bytes, more than 1 %% of %d", what, a, b, diff, want)
	}
}

// As root, a 256 MiB transfer through a real tunnel (relay and agent on
// loopback) is counted by the kernel, and again, through a second agent
// that counts in userspace, by the copy loop: each way, the eBPF count,
// the userspace count and the bytes the target received (or sent) agree
// within 1 %. Each agent's heartbeat tells the relay its mode.
func TestTunnelBytesEBPFAndUserspaceAgree(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("eBPF counting needs root (or CAP_BPF and CAP_NET_ADMIN); running as uid", os.Geteuid())
	}
	const up, down = 256 << 20, 32 << 20
	ctx := context.Background()
	runs := map[string]moved{}
	for _, mode := range []string{agent.CountingAuto, agent.CountingUserspace} {
		var logs syncbuf.Buffer
		d, err := demo.Start(ctx, demo.Options{
			Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
			Agent:  func(c *agent.Config) { c.Counting = mode },
		})
		if err != nil {
			t.Fatal(err)
		}
		want := bpfcount.ModeEBPF
		if mode == agent.CountingUserspace {
			want = bpfcount.ModeUserspace
		}
		if got := d.Agent.Counting(); got != want {
			d.Close()
			if mode == agent.CountingAuto && os.Getenv("CI") == "" {
				t.Skipf("root, but this kernel refuses the programs:\n%s", logs.String())
			}
			t.Fatalf("counting %s with --counting=%s, want %s:\n%s", got, mode, want, logs.String())
		}
		m, err := transfer(ctx, d, up, down)
		if err == nil {
			err = testwait.Until(30*time.Second, func() error {
				if got := siteCounting(ctx, d); got != want {
					return fmt.Errorf("the relay shows counting %q, want %q", got, want)
				}
				return nil
			})
		}
		d.Close()
		if err != nil {
			t.Fatalf("%s: %v", want, err)
		}
		if n := strings.Count(logs.String(), "counting tunnel bytes in"); n != 1 {
			t.Errorf("%s: the mode is logged %d times, want once:\n%s", want, n, logs.String())
		}
		t.Logf("%-9s target got %d sent %d; agent out %d in %d", want, m.targetGot, m.targetSent, m.agent.BytesOut, m.agent.BytesIn)
		runs[want] = m
	}
	e, u := runs[bpfcount.ModeEBPF], runs[bpfcount.ModeUserspace]
	agree(t, "eBPF out vs target received", e.agent.BytesOut, e.targetGot, up)
	agree(t, "userspace out vs target received", u.agent.BytesOut, u.targetGot, up)
	agree(t, "eBPF out vs userspace out", e.agent.BytesOut, u.agent.BytesOut, up)
	agree(t, "eBPF in vs target sent", e.agent.BytesIn, e.targetSent, down)
	agree(t, "userspace in vs target sent", u.agent.BytesIn, u.targetSent, down)
	agree(t, "eBPF in vs userspace in", e.agent.BytesIn, u.agent.BytesIn, down)
}

// childEnv makes this test binary the child of TestFallbackWithoutRights.
const childEnv = "NANODEMS_BPFCOUNT_CHILD"

// runChild is that child, started without CAP_BPF, CAP_NET_ADMIN,
// CAP_SYS_ADMIN and CAP_PERFMON: it runs a demo whose agent asks for the
// kernel mode, moves 1 MiB through a tunnel, prints its log to stderr
// and says on stdout what it saw.
func runChild() int {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	d, err := demo.Start(ctx, demo.Options{Logger: log, Agent: func(c *agent.Config) { c.Counting = agent.CountingAuto }})
	if err != nil {
		fmt.Println("FAIL demo:", err)
		return 1
	}
	defer d.Close()
	m, err := transfer(ctx, d, 1<<20, 64<<10)
	if err != nil {
		fmt.Println("FAIL transfer:", err)
		return 1
	}
	// The heartbeat (every 5 s) tells the relay.
	var relaySays string
	testwait.Until(30*time.Second, func() error {
		if relaySays = siteCounting(ctx, d); relaySays != bpfcount.ModeUserspace {
			return errors.New("no heartbeat with the mode yet")
		}
		return nil
	})
	fmt.Printf("counting=%s relay=%s out=%d got=%d in=%d sent=%d\n", d.Agent.Counting(), relaySays, m.agent.BytesOut, m.targetGot, m.agent.BytesIn, m.targetSent)
	return 0
}

// Without the rights to load BPF programs, an agent that asks for the
// kernel mode counts in userspace, says why once in its log and in its
// heartbeat, and still counts every byte. The child drops the capabilities from its bounding
// set with setpriv (util-linux) before it runs; as root its permitted set
// is then everything but those.
func TestFallbackWithoutRights(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("runs as root and drops the rights in a child; running as uid", os.Geteuid())
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv (util-linux) to drop capabilities:", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(setpriv, "--bounding-set", "-bpf,-net_admin,-sys_admin,-perfmon", "--inh-caps", "-all", "--", self, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	t.Logf("child: %s", strings.TrimSpace(stdout.String()))
	if err != nil {
		t.Fatalf("child: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "counting=userspace relay=userspace out=1048576 got=1048576 in=65536 sent=65536") {
		t.Errorf("the child did not count in userspace, or not every byte: %s", stdout.String())
	}
	var line string
	for _, l := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(l, "counting tunnel bytes in") {
			if line != "" {
				t.Errorf("the mode is logged twice:\n%s\n%s", line, l)
			}
			line = l
		}
	}
	t.Logf("the agent's log line: %s", line)
	for _, want := range []string{`msg="counting tunnel bytes in userspace"`, "counting=userspace", `reason="load BPF programs: operation not permitted (needs root, or CAP_BPF and CAP_NET_ADMIN)"`} {
		if !strings.Contains(line, want) {
			t.Errorf("the log line %q lacks %q", line, want)
		}
	}
}
