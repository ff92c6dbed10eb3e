package relay_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nanodems/connector/agent"
	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/syncbuf"
	"github.com/nanodems/connector/internal/testwait"
	"github.com/nanodems/connector/relay"
)

// The descriptor tests run the relay in a child process (this test binary
// again, see TestMain) whose RLIMIT_NOFILE is lowered, soft and hard, so
// that running out of descriptors is reachable without starving the test
// process, and the relay's raise to the hard limit cannot undo it.
const (
	fdChildEnv = "NANODEMS_FD_CHILD" // "NOFILE MAX_CONNS_PER_ADDR DATADIR"
	fdChildLim = 400
)

// runFDChild is the child: lower the limit, start a relay, print where it
// listens, and serve until stdin closes.
func runFDChild(spec string) int {
	var nofile uint64
	var maxPerAddr int
	var dir string
	if _, err := fmt.Sscan(spec, &nofile, &maxPerAddr, &dir); err != nil {
		fmt.Fprintln(os.Stderr, "fd child: bad spec:", spec, err)
		return 2
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: nofile, Max: nofile}); err != nil {
		fmt.Fprintln(os.Stderr, "fd child: setrlimit:", err)
		return 2
	}
	srv, err := relay.New(relay.Config{
		DataDir: dir, AgentAddr: "127.0.0.1:0", APIAddr: "127.0.0.1:0", RTSPAddr: "off", NodeName: "fd-child",
		MaxConnsPerAddr: maxPerAddr,
		Logger:          slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fd child:", err)
		return 1
	}
	fmt.Printf("READY %s %s %s\n", srv.APIURL(), srv.AgentAddr(), srv.APIPin())
	io.Copy(io.Discard, os.Stdin)
	srv.Close()
	return 0
}

// fdChild is a relay running in a child process.
type fdChild struct {
	apiURL, agentAddr, pin, dir string
	api                         *demo.API
	admin                       demo.Cred
	stderr                      *syncbuf.Buffer
}

func startFDChild(t *testing.T, maxPerAddr int) *fdChild {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := &fdChild{dir: t.TempDir(), stderr: &syncbuf.Buffer{}}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d %d %s", fdChildEnv, fdChildLim, maxPerAddr, filepath.Join(c.dir, "relay")))
	cmd.Stderr = c.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("relay child: %v", err)
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Error("relay child did not stop within 30 s")
		}
		if t.Failed() {
			t.Logf("relay child's log:\n%s", c.stderr.String())
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	f := strings.Fields(line)
	if err != nil || len(f) < 3 || f[0] != "READY" {
		t.Fatalf("relay child did not start (%q, %v):\n%s", line, err, c.stderr.String())
	}
	c.apiURL, c.agentAddr = f[1], f[2]
	if len(f) > 3 {
		c.pin = f[3]
	}
	key, err := os.ReadFile(filepath.Join(c.dir, "relay", "admin-key"))
	if err != nil {
		t.Fatal(err)
	}
	c.api, c.admin = demo.NewAPI(c.apiURL, c.pin), demo.Admin(strings.TrimSpace(string(key)))
	return c
}

// enroll makes a site and enrolls an agent into dir; the agent is not
// started.
func (c *fdChild) enroll(t *testing.T) *agent.Agent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var tn, site, et struct {
		ID              string `json:"id"`
		EnrollmentToken string `json:"enrollment_token"`
	}
	must(t, c.api.Do(ctx, "POST", "/api/admin/tenants", map[string]string{"name": "fd"}, &tn, c.admin))
	must(t, c.api.Do(ctx, "POST", "/api/tenants/"+tn.ID+"/sites", map[string]string{"name": "fd site"}, &site, c.admin))
	must(t, c.api.Do(ctx, "POST", "/api/sites/"+site.ID+"/enrollment-tokens", nil, &et, c.admin))
	dir := filepath.Join(c.dir, "agent")
	if _, err := agent.Enroll(ctx, agent.EnrollOptions{RelayURL: c.apiURL, Token: et.EnrollmentToken, Pin: c.pin, Dir: dir}); err != nil {
		t.Fatal(err)
	}
	c.api.Client.CloseIdleConnections()
	a, err := agent.New(agent.Config{Dir: dir, Logger: quietLogger(), HandshakeTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// runAgent runs a until the test ends and reports how long it took to
// connect, or fails after bound.
func runAgent(t *testing.T, a *agent.Agent, bound time.Duration) time.Duration {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	start := time.Now()
	testwait.For(t, bound, "the agent to connect", a.Connected)
	return time.Since(start)
}

// errRefused is an API connection closed before its handshake: the
// per-address bound.
var errRefused = errors.New("closed before the TLS handshake")

// idleAPIConn opens a TLS connection to the API, makes one keep-alive
// request on it and returns it idle, as a browser leaves one.
func idleAPIConn(apiURL string, timeout time.Duration) (net.Conn, error) {
	addr := strings.TrimPrefix(apiURL, "https://")
	raw, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	raw.SetDeadline(time.Now().Add(timeout))
	tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err := tc.Handshake(); err != nil {
		raw.Close()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", errRefused, err)
	}
	if _, err := io.WriteString(tc, "GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n"); err != nil {
		raw.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		raw.Close()
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw.Close()
		return nil, fmt.Errorf("healthz: %s", resp.Status)
	}
	raw.SetDeadline(time.Time{})
	return tc, nil
}

func closeAll(cs []net.Conn) {
	for _, c := range cs {
		c.Close()
	}
}

// With the per-address bound off, idle keep-alive connections to the API
// take every descriptor of the relay; connections to the agent listener
// then fail to be accepted. Once the idle connections go, the agent
// listener must accept again: an agent connects, and the API answers.
func TestAgentListenerSurvivesFDExhaustion(t *testing.T) {
	c := startFDChild(t, -1)
	a := c.enroll(t)

	// Exhaust: open idle connections until one gets no handshake.
	var idle []net.Conn
	defer func() { closeAll(idle) }()
	var exhausted error
	for len(idle) < fdChildLim+50 {
		ic, err := idleAPIConn(c.apiURL, 3*time.Second)
		if err != nil {
			exhausted = err
			break
		}
		idle = append(idle, ic)
	}
	if exhausted == nil {
		t.Fatalf("%d idle API connections and the relay still has descriptors (limit %d)", len(idle), fdChildLim)
	}
	t.Logf("descriptors exhausted after %d idle API connections (limit %d): %v", len(idle), fdChildLim, exhausted)

	// Connections to the agent listener are not accepted now.
	var probes []net.Conn
	defer func() { closeAll(probes) }()
	for range 20 {
		p, err := net.DialTimeout("tcp", c.agentAddr, 3*time.Second)
		if err != nil {
			t.Fatalf("connect to the agent port (backlog): %v", err)
		}
		probes = append(probes, p)
	}
	p := probes[0]
	p.SetDeadline(time.Now().Add(2 * time.Second))
	if err := tls.Client(p, &tls.Config{InsecureSkipVerify: true}).Handshake(); err == nil {
		t.Fatal("the agent listener answered a handshake while the relay had no descriptor left")
	}
	time.Sleep(500 * time.Millisecond) // deliberate: accepts keep failing a while, and the listener must outlast it

	// Free the descriptors.
	closeAll(idle)
	closeAll(probes)
	idle, probes = nil, nil
	freed := time.Now()
	took := runAgent(t, a, 30*time.Second)
	t.Logf("agent connected %v after the descriptors were freed", took.Round(time.Millisecond))
	ic, err := idleAPIConn(c.apiURL, 10*time.Second)
	if err != nil {
		t.Fatalf("API after the descriptors were freed: %v", err)
	}
	ic.Close()
	t.Logf("API answering %v after the descriptors were freed", time.Since(freed).Round(time.Millisecond))
	if log := c.stderr.String(); !strings.Contains(log, "too many open files") {
		t.Errorf("the relay logged no accept failure; was the limit reached?\n%s", log)
	}
}

// With the default bound (a quarter of the open-file limit), one address
// cannot take the relay's descriptors: its connections beyond the bound
// are closed at once, and an agent still connects while it holds all it
// may. A closed connection gives its slot back.
func TestAPIConnCapPerAddress(t *testing.T) {
	c := startFDChild(t, 0)
	want := fdChildLim / 4
	m := regexp.MustCompile(`api_max_conns_per_address=(\d+)`).FindStringSubmatch(c.stderr.String())
	if m == nil || m[1] != strconv.Itoa(want) {
		t.Fatalf("relay bound %v, want %d from its limit of %d:\n%s", m, want, fdChildLim, c.stderr.String())
	}
	a := c.enroll(t)

	var idle []net.Conn
	defer func() { closeAll(idle) }()
	refused := 0
	for range fdChildLim {
		start := time.Now()
		ic, err := idleAPIConn(c.apiURL, 5*time.Second)
		switch {
		case err == nil:
			idle = append(idle, ic)
		case errors.Is(err, errRefused):
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("a refused connection took %v to be closed", d)
			}
			refused++
		default:
			t.Fatalf("after %d idle connections and %d refused: %v", len(idle), refused, err)
		}
	}
	// The agent's enrollment client may still hold one idle connection.
	if len(idle) > want || len(idle) < want-1 {
		t.Fatalf("%d idle connections from one address were kept, want the bound %d", len(idle), want)
	}
	t.Logf("%d of %d connections from 127.0.0.1 kept, %d closed before the handshake", len(idle), fdChildLim, refused)

	took := runAgent(t, a, 30*time.Second)
	t.Logf("agent connected in %v while one address held all it may", took.Round(time.Millisecond))

	// A slot given back is taken again.
	closeAll(idle[:10])
	idle = idle[10:]
	retaken := 0
	if err := testwait.Until(10*time.Second, func() error { // the server sees the closes a little later
		for retaken < 10 {
			ic, err := idleAPIConn(c.apiURL, 5*time.Second)
			if err != nil {
				return fmt.Errorf("%d of 10 freed slots taken again: %w", retaken, err)
			}
			idle = append(idle, ic)
			retaken++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// An idle keep-alive connection to the API is closed after the idle
// timeout, while a WebSocket tunnel idle for longer lives on: it is
// hijacked, and no timeout of the HTTP server applies to it.
func TestAPIIdleTimeout(t *testing.T) {
	const idleFor = 500 * time.Millisecond
	defer relay.SetAPIIdleTimeout(idleFor)()
	d := startDemo(t)
	tun, err := cli.DialTunnel(context.Background(), operator(d), d.Info.EchoHandle)
	if err != nil {
		t.Fatal(err)
	}
	defer tun.Close()
	ic, err := idleAPIConn(d.Info.RelayURL, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	start := time.Now()
	ic.SetReadDeadline(start.Add(idleFor + 10*time.Second))
	if n, err := ic.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("idle API connection still open %v later (read %d bytes, %v), want closed after %v", time.Since(start).Round(time.Millisecond), n, err, idleFor)
	}
	t.Logf("idle API connection closed after %v (idle timeout %v)", time.Since(start).Round(time.Millisecond), idleFor)
	time.Sleep(idleFor) // deliberate: the tunnel stays idle past the API's idle timeout
	must(t, roundTrip(tun, 1<<20))
}
