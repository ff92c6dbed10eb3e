package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/testpg"
	"github.com/nanodems/connector/internal/testwait"
)

// binaries builds nanodems-relay, nanodems-agent and nanodems-tunnel once
// per test binary (without the race detector: they are the product, not
// the test).
var binaries = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "fleet-bin-")
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-o", dir,
		"github.com/nanodems/connector/cmd/nanodems-relay", "github.com/nanodems/connector/cmd/nanodems-agent",
		"github.com/nanodems/connector/cmd/nanodems-tunnel")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	binDir = dir
	return dir, nil
})

// binDir is what binaries built, removed by TestMain at the end.
var binDir string

// proc is a child process whose output goes to a file, so that no
// goroutine of this test copies it.
type proc struct {
	name   string
	cmd    *exec.Cmd
	logf   string
	exited chan struct{} // closed when Wait has returned
	// killedAt is when kill sent SIGKILL first.
	killedAt time.Time
}

// start runs bin with args, its stdout and stderr in dir/name.log, and
// kills it (SIGKILL) at the end of the test if it still runs.
func start(t *testing.T, dir, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	logf := filepath.Join(dir, name+".log")
	f, err := os.Create(logf)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // the child has its own copy
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, logf: logf, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("log of %s:\n%s", name, tail(p.log(), 40))
		}
	})
	return p
}

// kill is kill -9, then waits for the process to be gone.
func (p *proc) kill() {
	if p.running() && p.killedAt.IsZero() {
		p.killedAt = time.Now()
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (p *proc) log() string {
	b, _ := os.ReadFile(p.logf)
	return string(b)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freeAddrs returns n loopback addresses whose ports were free a moment
// ago.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var lns []net.Listener
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	for _, ln := range lns {
		ln.Close()
	}
	return addrs
}

// relayProc is one `nanodems-relay serve` of the fleet.
type relayProc struct {
	*proc
	node, dir                             string
	api, agentAddr, peerAddr, debug, rtsp string
	url                                   string // https://api
	client                                *http.Client
	up                                    time.Time // when it answered ready
	// link is the relay's peer endpoint, a forwarder to peerAddr that
	// the test can break (link_test.go).
	link *link
}

// jobTick is the relays' --job-tick: every locked job ticks each second
// and its lock lives three ticks (jobTTL), so that a run of minutes holds
// enough ticks and a takeover fits the test; docs/ha.md has the
// production values.
const (
	jobTick = time.Second
	jobTTL  = 3 * jobTick
)

// startFleet starts relays named nodes on a new database of the test
// PostgreSQL: the first creates the installation's key material, the
// others get copies of it (copyKeys). It returns the directory under which
// their data and logs are, the database, and the installation's pin and
// admin key.
func startFleet(t *testing.T, nodes ...string) (root, dsn string, in installation, relays []*relayProc) {
	t.Helper()
	dsn = testpg.DSN(t) // skips where PostgreSQL is not installed, outside CI
	if _, err := binaries(); err != nil {
		t.Fatal(err)
	}
	root = t.TempDir()
	first := startRelay(t, nodes[0], filepath.Join(root, nodes[0]), dsn, "")
	in.pin = pinLine.FindStringSubmatch(first.log())[1]
	key, err := os.ReadFile(filepath.Join(first.dir, "admin-key"))
	must(t, err)
	in.adminKey = strings.TrimSpace(string(key))
	relays = []*relayProc{first}
	for _, node := range nodes[1:] {
		copyKeys(t, first.dir, filepath.Join(root, node))
		relays = append(relays, startRelay(t, node, filepath.Join(root, node), dsn, in.pin))
	}
	return root, dsn, in, relays
}

// startRelay starts relay node on the shared database with data directory
// dir (already holding the installation's key material, except for the
// first relay, which creates it) and waits until it answers ready. It
// logs at debug level: the locked jobs' ticks are read from its log.
func startRelay(t *testing.T, node, dir, dsn, pin string) *relayProc {
	t.Helper()
	bins, err := binaries()
	if err != nil {
		t.Fatal(err)
	}
	a := freeAddrs(t, 5)
	r := &relayProc{node: node, dir: dir, api: a[0], agentAddr: a[1], peerAddr: a[2], debug: a[3], rtsp: a[4], url: "https://" + a[0]}
	r.link = newLink(t, r.peerAddr)
	r.proc = start(t, filepath.Dir(dir), node, []string{"NANODEMS_DATABASE=" + dsn}, filepath.Join(bins, "nanodems-relay"), "serve",
		"--data-dir", dir, "--node", node,
		"--api-addr", r.api, "--agent-addr", r.agentAddr, "--peer-addr", r.peerAddr, "--peer-endpoint", r.link.addr,
		"--debug-addr", r.debug, "--metrics-addr", "127.0.0.1:0", "--rtsp-addr", r.rtsp, "--rtsps-addr", "off",
		"--drain-timeout", "2s", "--job-tick", jobTick.String(), "--log-level", "debug")
	if pin == "" {
		testwait.For(t, 60*time.Second, node+" prints its API pin", func() bool {
			if !r.running() {
				t.Fatalf("%s exited:\n%s", node, r.log())
			}
			if m := pinLine.FindStringSubmatch(r.log()); m != nil {
				pin = m[1]
			}
			return pin != ""
		})
	}
	r.client = cli.Relay{URL: r.url, Pin: pin}.HTTPClient()
	t.Cleanup(r.client.CloseIdleConnections)
	testwait.For(t, 60*time.Second, node+" ready", func() bool {
		if !r.running() {
			t.Fatalf("%s exited:\n%s", node, r.log())
		}
		return healthz(t, r, "ready") == 200
	})
	r.up = time.Now()
	return r
}

var pinLine = regexp.MustCompile(`pin it with --ca-pin (\S+)`)

// apiClient is a management API client of this relay.
func (r *relayProc) apiClient() *demo.API { return &demo.API{Base: r.url, Client: r.client} }

// bridgeStats reads the relay's BridgeTunnel counters from its debug
// listener.
func (r *relayProc) bridgeStats(t *testing.T) (st struct {
	Opens    uint64 `json:"bridge_opens_total"`
	Bytes    uint64 `json:"bridge_bytes_total"`
	Failures uint64 `json:"bridge_failures_total"`
}) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://" + r.debug + "/debug/bridge")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// copyKeys gives dst the regular files of src: the Agent CA, the internal
// CA, the API certificate and the device key, as docs/ha.md has every
// relay of an installation share them.
func copyKeys(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || e.Name() == "admin-key" {
			continue
		}
		in, err := os.Open(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.OpenFile(filepath.Join(dst, e.Name()), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err == nil {
			_, err = io.Copy(out, in)
			out.Close()
		}
		in.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// agentProc is one `nanodems-agent run`.
type agentProc struct {
	*proc
	id, dir string
}

// startAgent enrolls an agent into siteID through relay via, then runs it
// with every relay's agent listener, and returns its id.
func startAgent(t *testing.T, root, name string, via *relayProc, pin, adminKey, siteID string, relays []*relayProc) *agentProc {
	t.Helper()
	bins, _ := binaries()
	var tok struct {
		EnrollmentToken string `json:"enrollment_token"`
	}
	must(t, via.apiClient().Do(context.Background(), "POST", "/api/sites/"+siteID+"/enrollment-tokens", nil, &tok, demo.Admin(adminKey)))
	dir := filepath.Join(root, name)
	bin := filepath.Join(bins, "nanodems-agent")
	out, err := exec.Command(bin, "enroll", "--relay", via.url, "--token", tok.EnrollmentToken, "--ca-pin", pin, "--data-dir", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("enroll %s: %v\n%s", name, err, out)
	}
	m := regexp.MustCompile(`enrolled as agent (\S+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("enroll %s: no agent id in %q", name, out)
	}
	var addrs []string
	for _, r := range relays {
		addrs = append(addrs, r.agentAddr)
	}
	p := start(t, root, name, nil, bin, "run", "--data-dir", dir, "--allow-loopback", "--relay-addr", strings.Join(addrs, ","))
	return &agentProc{proc: p, id: string(m[1]), dir: dir}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
