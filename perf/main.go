// Command perf is the end-to-end benchmark of the connector: it builds the
// relay, the agent and nanodems-tunnel, runs them as subprocesses on
// 127.0.0.1 with an echo target in another, provisions them through the
// HTTP API, and measures both operator paths: one WebSocket per tunnel
// (cli.DialTunnel) and the CLI's mux session (nanodems-tunnel run's
// listener, a stream per connection on one WebSocket), each through the
// relay and a stream of the agent's smux session to the target, beside
// direct loopback TCP to the same echo target, in the same run. It writes
// docs/perf.md, docs/perf.svg and docs/perf.jsonl.
//
//	go run ./perf           # full run, a few minutes on 2 cores
//	go run ./perf -quick    # about a minute
//	go run ./perf -peers    # frp and chisel beside the CLI path (perf/peers.go): docs/perf-peers.md
//
// It is a program, not a test: CI's go test never runs it.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
)

type config struct {
	quick       bool
	outDir      string
	totalMiB    int   // bytes each throughput run moves (split over its tunnels)
	concs       []int // tunnel counts of the throughput runs
	repeats     int
	chunk       int
	rttSamples  int
	idleK       int
	openDur     time.Duration
	openPar     int
	timeout     time.Duration
	keep        bool
	pprofMode   bool
	cpuprofile  string
	write       bool
	perfstat    bool
	extraEvents bool
	serverEnv   []string        // extra environment of relay, agent and nanodems-tunnel; "role:K=V" for one of them
	plainHTTP   bool            // diagnostic: relay API without TLS
	cliTranspt  string          // nanodems-tunnel run --relay-transport
	dedRate     int64           // -pprof only: the agent's DedicatedRate
	only        map[string]bool // phases to run; empty: all
	bridge      bool            // the bridge figure instead of the main run (perf/bridge.go)
	counting    bool            // the counting figure instead of the main run (perf/counting.go)
	peers       bool            // frp and chisel beside the CLI path instead of the main run (perf/peers.go)
	haltPollNS  int             // the guest halt-polling window for the run; -1: as the machine has it (perf/idle.go)
}

func (c *config) on(phase string) bool { return len(c.only) == 0 || c.only[phase] }

func main() {
	var c config
	flag.BoolVar(&c.quick, "quick", false, "short run (~1 minute): smaller transfers, 1000 idle tunnels, no 64-tunnel run")
	flag.StringVar(&c.outDir, "out", "", "where perf.md, perf.svg and perf.jsonl go (default: the module's docs/)")
	flag.IntVar(&c.totalMiB, "mib", 0, "MiB echoed per throughput run, split over its tunnels (default 512, quick 128)")
	flag.IntVar(&c.repeats, "repeats", 0, "runs per throughput figure, the median is reported (default 3, quick 3)")
	flag.IntVar(&c.chunk, "chunk", 32<<10, "bytes per Write of the throughput writers (one WebSocket message per Write on a tunnel)")
	flag.IntVar(&c.rttSamples, "rtt-samples", 2000, "64-byte round trips per RTT figure")
	flag.IntVar(&c.idleK, "idle", 0, "idle tunnels for the memory figure (default 10000, quick 1000)")
	flag.IntVar(&c.openPar, "open-par", 4, "concurrent openers of the tunnels-per-second figure")
	flag.IntVar(&c.haltPollNS, "halt-poll-ns", -1, "set the KVM guest's halt-polling window (haltpoll cpuidle driver, root) to this many ns for the run and put the old one back after it (Linux's default is 200000; a kill -9 leaves it set); -1: leave it")
	flag.DurationVar(&c.timeout, "timeout", 0, "bound on the whole run (default 10m, quick 4m)")
	flag.BoolVar(&c.keep, "keep", false, "keep the temporary directory (binaries, logs, data, profiles)")
	flag.BoolVar(&c.pprofMode, "pprof", false, "diagnostics: run relay and agent as roles of this binary with a debug listener; adds Go heap per idle tunnel and CPU/heap/goroutine profiles of relay and agent (in $TMPDIR/nanodems-perf-pprof)")
	flag.StringVar(&c.cpuprofile, "cpuprofile", "", "write a CPU profile of the harness itself to this file")
	flag.BoolVar(&c.bridge, "bridge", false, "measure a tunnel through a bridge hop (a second relay on the same database) beside the same tunnel on the relay that holds the agent; writes docs/perf-ha.md instead of perf.md")
	flag.BoolVar(&c.counting, "counting", false, "measure the agent's CPU per GB echoed with its tunnel bytes counted in the kernel (eBPF), in userspace and not at all, in the same run; writes docs/perf-counting.md instead of perf.md (run it as root under nice -n -20 for the eBPF mode)")
	flag.BoolVar(&c.peers, "peers", false, "measure frp (built from perf/peers into a cache directory: a tcp proxy, and an stcp proxy with a visitor) and chisel (built from perf/peers/chisel: a reverse forward) beside the CLI path and direct TCP; repeats default 4 (quick 1); writes docs/perf-peers.md and perf-peers.svg instead of perf.md")
	flag.BoolVar(&c.write, "write", true, "write the report files (false: stdout only)")
	flag.BoolVar(&c.perfstat, "perfstat", false, "count system calls and context switches of every process with Linux perf stat during throughput and open runs")
	events := flag.String("perfstat-events", "", "with -perfstat: extra perf events to count, comma-separated (e.g. syscalls:sys_enter_write,syscalls:sys_enter_futex)")
	flag.BoolVar(&c.plainHTTP, "plain-http", false, "diagnostic: run the relay API without TLS (--plain-http) to see what the operator leg's TLS costs; not the product's configuration")
	flag.StringVar(&c.cliTranspt, "cli-transport", "auto", "nanodems-tunnel run --relay-transport: auto, raw (smux over TLS, ALPN) or ws (smux over a WebSocket); a before/after of the CLI's leg in one harness")
	flag.Int64Var(&c.dedRate, "dedicated-rate", 0, "the agent's DedicatedRate in bytes/s for every phase but the shared-session half of the head-of-line figure (0: the agent's default; -1: never move tunnels to dedicated connections)")
	senv := flag.String("server-env", "", "extra environment for relay, agent and nanodems-tunnel, comma-separated (e.g. GOMAXPROCS=1,GOGC=200); relay:K=V, agent:K=V or cli:K=V sets it for that process alone (with -peers, frp:K=V and chisel:K=V for those peers)")
	paths := flag.String("paths", "", "diagnostic: comma-separated tunnel paths to measure, ws and/or cli (default both; with -peers: direct, cli, frp-tcp, frp-stcp, chisel, bare-2, bare-3, bare-3-blind); a partial run does not write the report files")
	only := flag.String("only", "", "comma-separated phases to run: idle, throughput, rtt, opens, hol; with -peers, load alone runs only the load figure (default all; a partial run does not write the report files)")
	echoAddr := flag.String("serve-echo", "", "internal: serve the echo target on this address")
	fwdSpec := flag.String("serve-forward", "", "internal: forward plain TCP from LISTEN to TARGET (LISTEN>TARGET), the floor of the round-trip figure")
	tlsFwdSpec := flag.String("serve-tls-forward", "", "internal: terminate TLS on LISTEN and forward over a new TLS connection to TARGET (LISTEN>TARGET): one extra TLS leg, the yardstick of the bridge figure")
	hopSpec := flag.String("serve-hop", "", "internal: one hop of a bare chain, plain|tls:LISTEN>plain|tls:TARGET (perf/bare.go)")
	role := flag.String("role", "", "internal: run as relay or agent (with -pprof)")
	debugAddr := flag.String("debug-addr", "", "internal: debug listener of a role")
	flag.Parse()

	if *echoAddr != "" {
		if err := serveEcho(*echoAddr); err != nil {
			fmt.Fprintln(os.Stderr, "perf echo:", err)
			os.Exit(1)
		}
		return
	}
	if *fwdSpec != "" {
		if err := serveForward(*fwdSpec); err != nil {
			fmt.Fprintln(os.Stderr, "perf forward:", err)
			os.Exit(1)
		}
		return
	}
	if *tlsFwdSpec != "" {
		if err := serveTLSForward(*tlsFwdSpec); err != nil {
			fmt.Fprintln(os.Stderr, "perf TLS forward:", err)
			os.Exit(1)
		}
		return
	}
	if *hopSpec != "" {
		if err := serveHop(*hopSpec); err != nil {
			fmt.Fprintln(os.Stderr, "perf hop:", err)
			os.Exit(1)
		}
		return
	}
	if *role != "" {
		if err := runRole(*role, *debugAddr, flag.Args()); err != nil {
			fmt.Fprintf(os.Stderr, "perf %s: %v\n", *role, err)
			os.Exit(1)
		}
		return
	}

	c.defaults()
	if *senv != "" {
		c.serverEnv = strings.Split(*senv, ",")
	}
	if *events != "" {
		perfEvents = append(perfEvents, strings.Split(*events, ",")...)
		c.extraEvents = true
	}
	if *only != "" {
		c.only = map[string]bool{}
		for _, p := range strings.Split(*only, ",") {
			c.only[strings.TrimSpace(p)] = true
		}
		c.write = false
	}
	if *paths != "" && c.peers {
		peerPaths = strings.Split(*paths, ",")
		known := slices.Concat(peerColumns, barePaths)
		for _, p := range peerPaths {
			if !slices.Contains(known, p) {
				fmt.Fprintf(os.Stderr, "perf: -peers -paths: unknown path %q; the paths are %s\n", p, strings.Join(known, ", "))
				os.Exit(2)
			}
		}
		c.write = false
	} else if *paths != "" {
		tunnelPaths = strings.Split(*paths, ",")
		allPaths = append(slices.Clone(tunnelPaths), pathDirect)
		c.write = false
	}
	// The halt-polling window is the machine's, not the run's: it is put
	// back on every way out but a kill -9 (os.Exit skips deferred calls).
	restoreIdle := func() {}
	if c.haltPollNS >= 0 {
		restore, err := setHaltPoll(c.haltPollNS)
		if err != nil {
			fmt.Fprintln(os.Stderr, "perf:", err)
			os.Exit(2)
		}
		logf("guest halt polling set to %d ns for the run", c.haltPollNS)
		restoreIdle = func() {
			if err := restore(); err != nil {
				fmt.Fprintln(os.Stderr, "perf:", err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "\nperf: %v: stopping the relay, agent and echo target\n", s)
		cancel()
		<-sig
		children.killAll()
		restoreIdle()
		os.Exit(130)
	}()
	if c.cpuprofile != "" {
		f, err := os.Create(c.cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "perf: -cpuprofile:", err)
			restoreIdle()
			os.Exit(2)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	err := run(ctx, &c)
	children.stopAll()
	restoreIdle()
	cancel()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w (the whole run is bounded by -timeout %v)", err, c.timeout)
		}
		fmt.Fprintln(os.Stderr, "perf:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func (c *config) defaults() {
	def := func(v *int, full, quick int) {
		if *v == 0 {
			*v = full
			if c.quick {
				*v = quick
			}
		}
	}
	def(&c.totalMiB, 512, 128)
	if c.peers {
		def(&c.repeats, 4, 1)
	}
	def(&c.repeats, 3, 3)
	def(&c.idleK, 10000, 1000)
	if c.timeout == 0 {
		c.timeout = 10 * time.Minute
		if c.quick {
			c.timeout = 4 * time.Minute
		}
		if c.peers {
			c.timeout = time.Duration(c.repeats) * 8 * time.Minute
		}
	}
	c.concs = []int{1, 8, 64}
	c.openDur = 5 * time.Second
	if c.quick {
		c.concs = []int{1, 8}
		c.openDur = 2 * time.Second
	}
}

// Paths: the two ways an operator reaches a device through the relay, and
// the baseline.
const (
	pathWS     = "ws"     // cli.DialTunnel: one WebSocket over TLS per tunnel
	pathCLI    = "cli"    // nanodems-tunnel run: a stream per connection on one mux WebSocket
	pathDirect = "direct" // loopback TCP straight to the echo target
	// pathFloor is loopback TCP through two plain forwarder processes to
	// the echo target: what crossing two processes costs by itself. Only
	// the round trip and throughput measure it.
	pathFloor = "floor"
)

// tunnelPaths are the paths through the relay, in report order.
var tunnelPaths = []string{pathWS, pathCLI}

// allPaths is tunnelPaths and the baseline.
var allPaths = []string{pathWS, pathCLI, pathDirect}

// env is a running installation and the ways to reach the echo target.
type env struct {
	cfg                     *config
	tmp, bin                string
	relay, agent, echo, cli *proc
	relayDebug              string // debug listener of the relay role (-pprof)
	agentDebug              string
	relay2Debug             string // of relay 2 (-bridge -pprof)
	cliDebug                string // of the tunnel role (-pprof)
	apiURL, pin             string
	token, handle           string
	opsToken                string // the CLI session nanodems-tunnel runs with
	cliAddr                 string // the plan address of the echo target (127.0.0.X:port)
	echoAddr                string
	floorAddr               string // the first of two plain TCP forwarders in front of the echo target
	siteID                  string
	api                     *demo.API
	admin                   demo.Cred
	relayPath, agentPath    string
	relayArgs, agentArgs    []string
	agentCgroup             *agentCgroup // -counting: where the agent runs (perf/counting.go)
	cgroupNote              string       // -counting: says where the agent ran
	dial                    map[string]dialFunc
	profiles                []string // CPU profiles written (-pprof)

	omu       sync.Mutex
	others    map[int]float64 // CPU seconds of other processes, last reading
	othersAcc float64         // CPU seconds other processes used since the first reading
}

// procs are the running processes of the installation (not the harness).
func (e *env) procs() []*proc {
	var ps []*proc
	for _, p := range []*proc{e.relay, e.agent, e.echo, e.cli} {
		if p != nil {
			ps = append(ps, p)
		}
	}
	return ps
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func run(ctx context.Context, c *config) (err error) {
	started := time.Now()
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if c.outDir == "" {
		c.outDir = filepath.Join(root, "docs")
	}
	nofile := raiseNofile()
	if c.peers && nofile < 4*loadConns+512 {
		return fmt.Errorf("-peers opens %d connections through up to three processes: RLIMIT_NOFILE is %d", loadConns, nofile)
	}
	if need := uint64(c.idleK) + 512; nofile < need {
		k := int(nofile) - 512
		logf("RLIMIT_NOFILE is %d: idle tunnels lowered from %d to %d", nofile, c.idleK, k)
		c.idleK = k
	}
	tmp, err := os.MkdirTemp("", "nanodems-perf-")
	if err != nil {
		return err
	}
	defer func() {
		children.stopAll()
		if c.keep || (err != nil && !errors.Is(err, context.Canceled)) {
			logf("temporary directory kept: %s", tmp)
		} else {
			os.RemoveAll(tmp)
		}
	}()
	bin := filepath.Join(tmp, "bin")
	logf("building relay, agent and tunnel with go build")
	if err := build(ctx, root, bin); err != nil {
		return err
	}
	e := &env{cfg: c, tmp: tmp, bin: bin}
	if err := e.up(ctx); err != nil {
		return err
	}
	if c.bridge {
		return runBridge(ctx, c, e)
	}
	if c.counting {
		return runCounting(ctx, c, e)
	}
	if c.peers {
		return runPeers(ctx, c, e, root)
	}
	rep := newReport(c, started)
	rep.machine = machineInfo(root)
	if err := e.measure(ctx, rep); err != nil {
		return err
	}
	if c.pprofMode {
		rep.diag = topLists(ctx, e.profiles)
	}
	rep.elapsed = time.Since(started)
	rep.print(os.Stdout)
	if c.write {
		if err := rep.write(c.outDir); err != nil {
			return err
		}
		logf("wrote %s/perf.md, perf.svg, perf.jsonl", c.outDir)
	}
	return nil
}

// up starts the echo target, the relay and the agent, provisions a
// tenant, user, token, site, device and enrolled agent through the API,
// mints a CLI session and starts nanodems-tunnel run with it.
func (e *env) up(ctx context.Context) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	// Echo target, in its own process so its CPU is its own.
	if e.echoAddr, err = freeAddr(); err != nil {
		return err
	}
	if e.echo, err = children.start(e.tmp, "echo", self, []string{"-serve-echo", e.echoAddr}, nil, "listening"); err != nil {
		return err
	}
	if _, err := e.echo.waitLine(ctx, "listening", 10*time.Second); err != nil {
		return err
	}
	// Two plain TCP forwarders in front of it, each its own process: the
	// round trip's floor for a path that crosses two processes on its way,
	// as every tunnel crosses the relay and the agent.
	to := e.echoAddr
	for _, name := range []string{"forwarder-2", "forwarder-1"} {
		from, err := freeAddr()
		if err != nil {
			return err
		}
		fp, err := children.start(e.tmp, name, self, []string{"-serve-forward", from + ">" + to}, nil, "listening")
		if err != nil {
			return err
		}
		if _, err := fp.waitLine(ctx, "listening", 10*time.Second); err != nil {
			return err
		}
		to = from
	}
	e.floorAddr = to

	// Relay.
	apiAddr, err := freeAddr()
	if err != nil {
		return err
	}
	agentAddr, err := freeAddr()
	if err != nil {
		return err
	}
	data := filepath.Join(e.tmp, "relay")
	// Every tunnel comes from 127.0.0.1: the relay's per-address bound
	// (a quarter of its open-file limit) is off here.
	// The peer listener on a free port and no RTSP listeners: another run
	// may hold the defaults.
	peerAddr, err := freeAddr()
	if err != nil {
		return err
	}
	args := []string{"serve", "--data-dir", data, "--api-addr", apiAddr, "--agent-addr", agentAddr, "--peer-addr", peerAddr, "--metrics-addr", "127.0.0.1:0", "--rtsp-addr", "off", "--rtsps-addr", "off", "--log-level", "warn", "--node", "perf-relay", "--max-conns-per-addr", "-1"}
	path := filepath.Join(e.bin, "nanodems-relay")
	if e.cfg.pprofMode {
		if e.relayDebug, err = freeAddr(); err != nil {
			return err
		}
		path, args = self, append([]string{"-role", "relay", "-debug-addr", e.relayDebug, "--"}, args[1:]...)
	}
	scheme := "https"
	if e.cfg.plainHTTP {
		scheme = "http"
		args = append(args, "--plain-http")
	}
	e.relayPath, e.relayArgs = path, args
	e.apiURL = scheme + "://" + apiAddr
	logf("starting relay: API %s, agents %s", e.apiURL, agentAddr)
	if err := e.startRelay(ctx); err != nil {
		return err
	}
	if !e.cfg.plainHTTP {
		if pin, err := pinOf(filepath.Join(data, "api.pem")); err != nil || pin != e.pin {
			return fmt.Errorf("relay printed pin %s, but api.pem gives %s (%v)", e.pin, pin, err)
		}
	}
	key, err := os.ReadFile(filepath.Join(data, "admin-key"))
	if err != nil {
		return err
	}
	e.admin = demo.Admin(strings.TrimSpace(string(key)))
	e.api = demo.NewAPI(e.apiURL, e.pin)
	api, admin := e.api, e.admin

	// Provision, as an operator's curl would.
	var t, u, tok, site, et struct {
		ID              string `json:"id"`
		Token           string `json:"token"`
		EnrollmentToken string `json:"enrollment_token"`
	}
	steps := []struct {
		what, method, path string
		in                 any
		out                any
		cred               demo.Cred
	}{
		{"create tenant", "POST", "/api/admin/tenants", map[string]string{"name": "perf"}, &t, admin},
		{"create user", "POST", "/api/tenants/{t}/users", map[string]string{"email": "perf@bench.invalid", "password": "perf-password-123"}, &u, admin},
		{"create token", "POST", "/api/users/{u}/tokens", nil, &tok, admin},
		{"create site", "POST", "/api/tenants/{t}/sites", map[string]any{"name": "perf site", "allow_loopback": true}, &site, admin},
		{"mint enrollment token", "POST", "/api/sites/{s}/enrollment-tokens", nil, &et, admin},
	}
	for _, s := range steps {
		p := strings.NewReplacer("{t}", t.ID, "{u}", u.ID, "{s}", site.ID).Replace(s.path)
		if err := api.Do(ctx, s.method, p, s.in, s.out, s.cred); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
	}
	e.token, e.siteID = tok.Token, site.ID
	_, echoPort, _ := net.SplitHostPort(e.echoAddr)
	var dev struct {
		Handles map[string]string `json:"handles"`
	}
	var port int
	fmt.Sscan(echoPort, &port)
	if err := api.Do(ctx, "POST", "/api/sites/"+site.ID+"/devices", map[string]any{"host": "127.0.0.1", "ports": []int{port}, "label": "perf echo"}, &dev, demo.Bearer(e.token)); err != nil {
		return fmt.Errorf("add device: %w", err)
	}
	if e.handle = dev.Handles[echoPort]; e.handle == "" {
		return fmt.Errorf("add device: no handle for port %s in %v", echoPort, dev.Handles)
	}

	// Agent: enroll, then run.
	agentDir := filepath.Join(e.tmp, "agent")
	agentBin := filepath.Join(e.bin, "nanodems-agent")
	eargs := []string{"enroll", "--relay", e.apiURL, "--token", et.EnrollmentToken, "--data-dir", agentDir}
	if e.pin != "" {
		eargs = append(eargs, "--ca-pin", e.pin)
	}
	enroll := execOut(ctx, agentBin, eargs...)
	if enroll != nil {
		return fmt.Errorf("agent enroll: %w", enroll)
	}
	// The echo target is on 127.0.0.1.
	e.agentPath, e.agentArgs = agentBin, []string{"run", "--data-dir", agentDir, "--allow-loopback"}
	if e.cfg.pprofMode {
		if e.agentDebug, err = freeAddr(); err != nil {
			return err
		}
		e.agentPath, e.agentArgs = self, []string{"-role", "agent", "-debug-addr", e.agentDebug, "--", "--data-dir", agentDir, "--allow-loopback"}
	}
	if err := e.startAgent(ctx, e.cfg.dedRate); err != nil {
		return err
	}

	// CLI session and nanodems-tunnel run, as an operator starts it.
	var cs struct {
		Token string `json:"token"`
	}
	if err := api.Do(ctx, "POST", "/api/cli/sessions", map[string]any{"site_ids": []string{site.ID}, "label": "perf"}, &cs, demo.Bearer(e.token)); err != nil {
		return fmt.Errorf("mint CLI session: %w", err)
	}
	e.opsToken = cs.Token
	var plan cli.Plan
	if err := api.Do(ctx, "GET", "/api/cli/sessions/plan", nil, &plan, demo.Bearer(e.opsToken)); err != nil {
		return fmt.Errorf("CLI plan: %w", err)
	}
	for _, pe := range plan.Entries {
		if pe.Handle == e.handle {
			e.cliAddr = net.JoinHostPort(pe.IP, strconv.Itoa(int(pe.Port)))
		}
	}
	if e.cliAddr == "" {
		return fmt.Errorf("CLI plan has no entry for handle %s: %+v", e.handle, plan.Entries)
	}
	if err := e.startCLI(ctx); err != nil {
		return err
	}
	logf("agent online; handle %s → echo %s, CLI listener %s; pids: relay %d, agent %d, echo %d, nanodems-tunnel %d, harness %d",
		e.handle, e.echoAddr, e.cliAddr, e.relay.pid(), e.agent.pid(), e.echo.pid(), e.cli.pid(), os.Getpid())

	r := cli.Relay{URL: e.apiURL, Token: e.token, Pin: e.pin}
	var d net.Dialer
	e.dial = map[string]dialFunc{
		pathWS:     func(ctx context.Context) (net.Conn, error) { return cli.DialTunnel(ctx, r, e.handle) },
		pathCLI:    func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", e.cliAddr) },
		pathDirect: func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", e.echoAddr) },
		pathFloor:  func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", e.floorAddr) },
	}
	return nil
}

// startRelay starts the relay (again) and waits for its API.
func (e *env) startRelay(ctx context.Context) error {
	var err error
	if e.relay, err = children.start(e.tmp, "relay", e.relayPath, e.relayArgs, e.cfg.envFor("relay"), "--ca-pin "); err != nil {
		return err
	}
	if e.cfg.plainHTTP {
		return waitHealthy(ctx, e.relay, e.apiURL)
	}
	line, err := e.relay.waitLine(ctx, "--ca-pin ", 30*time.Second)
	if err != nil {
		return err
	}
	_, pin, _ := strings.Cut(line, "--ca-pin ")
	pin = strings.TrimSpace(pin)
	if e.pin != "" && pin != e.pin {
		return fmt.Errorf("restarted relay has pin %s, was %s", pin, e.pin)
	}
	e.pin = pin
	return nil
}

// startAgent starts the agent (again) with DedicatedRate rate (0: the
// default) and waits until it is online with the site's allowlist.
func (e *env) startAgent(ctx context.Context, rate int64) error {
	args := e.agentArgs
	if rate != 0 {
		args = append(slices.Clip(args), "--dedicated-rate", strconv.FormatInt(rate, 10))
	}
	var err error
	if e.agent, err = children.start(e.tmp, "agent", e.agentPath, args, e.cfg.envFor("agent"), movedLine); err != nil {
		return err
	}
	return e.waitOnline(ctx)
}

// startCLI starts nanodems-tunnel run with the CLI session and waits
// until its listener on the echo target's plan address answers.
func (e *env) startCLI(ctx context.Context) error {
	args := []string{"run", "--relay", e.apiURL, "--token", e.opsToken, "--relay-transport", e.cfg.cliTranspt}
	if e.pin != "" {
		args = append(args, "--ca-pin", e.pin)
	}
	path := filepath.Join(e.bin, "nanodems-tunnel")
	if e.cfg.pprofMode {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		if e.cliDebug == "" {
			if e.cliDebug, err = freeAddr(); err != nil {
				return err
			}
		}
		path, args = self, append([]string{"-role", "tunnel", "-debug-addr", e.cliDebug, "--"}, args[1:]...)
	}
	var err error
	if e.cli, err = children.start(e.tmp, "cli", path, args, e.cfg.envFor("cli")); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	b := []byte{1}
	for {
		c, err := net.DialTimeout("tcp", e.cliAddr, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			_, err = c.Write(b)
			if err == nil {
				_, err = io.ReadFull(c, b)
			}
			c.Close()
			if err == nil {
				return nil
			}
		}
		if aerr := e.cli.alive(); aerr != nil {
			return aerr
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nanodems-tunnel: no echo through %s after 30s (%v); see %s", e.cliAddr, err, e.cli.log)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// restart stops nanodems-tunnel, the agent and the relay and starts them
// again: fresh heaps for the next idle-memory figure (a Go process keeps
// freed memory for a while, so a second run of K tunnels in the same
// processes would reuse it and show almost no growth).
func (e *env) restart(ctx context.Context) error {
	logf("restarting relay, agent and nanodems-tunnel for fresh heaps")
	for _, p := range []*proc{e.cli, e.agent, e.relay} {
		p.stop(5 * time.Second)
	}
	if err := e.startRelay(ctx); err != nil {
		return err
	}
	if err := e.startAgent(ctx, e.cfg.dedRate); err != nil {
		return err
	}
	return e.startCLI(ctx)
}

// movedLine is what the agent logs when it moves a heavy tunnel to a
// dedicated connection (agent.Config.DedicatedRate).
const movedLine = "moving heavy tunnel to a dedicated connection"

// waitHealthy polls GET /healthz of a relay (plain HTTP) until it answers.
func waitHealthy(ctx context.Context, p *proc, base string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/healthz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if err := p.alive(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("relay did not answer %s/healthz within 30s; see %s", base, p.log)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func execOut(ctx context.Context, path string, args ...string) error {
	cmd := execCommand(ctx, path, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// waitOnline waits until the site's agent is online and holds the site's
// allowlist version.
func (e *env) waitOnline(ctx context.Context) error {
	api, admin, siteID := e.api, e.admin, e.siteID
	deadline := time.Now().Add(30 * time.Second)
	for {
		var site struct {
			AllowlistVersion int64 `json:"allowlist_version"`
		}
		var agents []struct {
			Online           bool  `json:"online"`
			AllowlistVersion int64 `json:"allowlist_version"`
		}
		err := api.Do(ctx, "GET", "/api/sites/"+siteID, nil, &site, admin)
		if err == nil {
			err = api.Do(ctx, "GET", "/api/sites/"+siteID+"/agents", nil, &agents, admin)
		}
		if err == nil && len(agents) > 0 && agents[0].Online && agents[0].AllowlistVersion >= site.AllowlistVersion {
			return nil
		}
		if err := e.agent.alive(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("agent not online with allowlist v%d after 30s (last: %+v, err %v); see %s", site.AllowlistVersion, agents, err, e.agent.log)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// alive checks that no subprocess died.
func (e *env) alive() error {
	for _, p := range e.procs() {
		if err := p.alive(); err != nil {
			return err
		}
	}
	return nil
}

// measure runs every figure, idle memory first (on processes that have
// not yet grown their heaps with bulk transfers).
func (e *env) measure(ctx context.Context, rep *report) error {
	c := e.cfg
	// Warm-up: code paths, pools, the route cache, the handle pin.
	warm := func() error {
		for _, path := range tunnelPaths {
			if _, err := opens(ctx, e.dial[path], 4, 500*time.Millisecond, 200, nopMeter{}); err != nil {
				return fmt.Errorf("warm-up %s: %w", path, err)
			}
		}
		return nil
	}
	if err := warm(); err != nil {
		return err
	}

	if c.on("idle") {
		for i, path := range tunnelPaths {
			if i > 0 {
				if err := e.restart(ctx); err != nil {
					return err
				}
				if err := warm(); err != nil {
					return err
				}
			}
			if err := e.measureIdle(ctx, rep, path); err != nil {
				return fmt.Errorf("idle tunnels over %s: %w", path, err)
			}
			if err := e.alive(); err != nil {
				return err
			}
		}
	}

	// Throughput.
	p := &payload{pool: make([]byte, 16<<20+12345), chunk: c.chunk}
	rand.Read(p.pool)
	if c.pprofMode && c.on("throughput") {
		e.profile(ctx, "start", "throughput")
	}
	for _, n := range c.concs {
		if !c.on("throughput") {
			break
		}
		per := int64(c.totalMiB) << 20 / int64(n)
		sums := make([][32]byte, n)
		for i := range sums {
			sums[i] = p.sum(i, per)
		}
		for r := 0; r < c.repeats; r++ {
			for _, path := range append(slices.Clone(allPaths), pathFloor) {
				moved0 := e.agent.count(movedLine)
				rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
				res, err := throughput(rctx, e.dial[path], n, per, p, sums, e.meter())
				cancel()
				if err != nil {
					if aerr := e.alive(); aerr != nil {
						return aerr
					}
					return fmt.Errorf("throughput, %d %s connection(s): %w", n, path, err)
				}
				if path != pathDirect && path != pathFloor {
					res.Moved = e.agent.count(movedLine) - moved0
				}
				logf("throughput %-6s %2d conn × %4d MiB: %8.1f MB/s  (CPU s: relay %.2f agent %.2f cli %.2f echo %.2f harness %.2f; other processes %.2f; moved to dedicated connections: %d)",
					path, n, per>>20, res.MBps(), res.CPU["relay"], res.CPU["agent"], res.CPU["cli"], res.CPU["echo"], res.CPU["harness"], res.CPU["other"], res.Moved)
				if c.perfstat {
					mib := float64(res.Bytes) / (1 << 20)
					var parts []string
					for _, who := range []string{"harness", "relay", "agent", "cli", "echo"} {
						if v, ok := res.CPU[who+" syscalls"]; ok {
							parts = append(parts, fmt.Sprintf("%s %.0f/%.0f", who, v/mib, res.CPU[who+" context-switches"]/mib))
						}
					}
					logf("    per MiB echoed, syscalls/context switches: %s", strings.Join(parts, ", "))
					if c.extraEvents {
						logExtraEvents(res.CPU, mib, "MiB")
					}
				}
				rep.tp = append(rep.tp, tpRun{Path: path, tpResult: res})
			}
		}
	}
	if c.pprofMode && c.on("throughput") {
		e.profile(ctx, "stop", "throughput")
	}

	// Round trips.
	if c.pprofMode && c.on("rtt") {
		e.profile(ctx, "start", "rtt")
	}
	for _, path := range allPaths {
		if !c.on("rtt") {
			break
		}
		dial := e.dial[path]
		var m meter
		if c.perfstat {
			m = e.meter()
			m.start()
		}
		res, err := pingPong(ctx, dial, 64, 200, c.rttSamples)
		if err != nil {
			return fmt.Errorf("round trip over %s: %w", path, err)
		}
		logf("rtt %-6s 64 B: p50 %v p99 %v", path, res.pct(50).Round(time.Microsecond), res.pct(99).Round(time.Microsecond))
		if m != nil {
			u := m.stop()
			n := float64(c.rttSamples + 200)
			var parts []string
			for _, who := range []string{"harness", "relay", "agent", "cli", "echo"} {
				if v, ok := u[who+" syscalls"]; ok {
					parts = append(parts, fmt.Sprintf("%s %.1f/%.1f/%.0fµs", who, v/n, u[who+" context-switches"]/n, u[who]/n*1e6))
				}
			}
			logf("    per round trip, syscalls/context switches/CPU: %s", strings.Join(parts, ", "))
			if c.extraEvents {
				logExtraEvents(u, n, "round trip")
			}
		}
		rep.rtt[path] = res
		// The same while another connection moves bulk data as fast as
		// it can: on 2 cores that saturates the CPU.
		lr, err := pingUnderLoad(ctx, dial, p, 0, c.rttSamples/2)
		if err != nil {
			return fmt.Errorf("round trip under load over %s: %w", path, err)
		}
		logf("rtt %-6s 64 B beside a saturating bulk transfer: p50 %v p99 %v", path, lr.pct(50).Round(time.Microsecond), lr.pct(99).Round(time.Microsecond))
		rep.rttLoaded[path] = lr
	}
	if c.on("rtt") {
		res, err := pingPong(ctx, e.dial[pathFloor], 64, 200, c.rttSamples)
		if err != nil {
			return fmt.Errorf("round trip through the plain forwarders: %w", err)
		}
		logf("rtt floor  64 B through two plain TCP forwarder processes: p50 %v p99 %v", res.pct(50).Round(time.Microsecond), res.pct(99).Round(time.Microsecond))
		rep.floor = res
	}

	if c.pprofMode && c.on("rtt") {
		e.profile(ctx, "stop", "rtt")
	}

	// Opens.
	if c.pprofMode && c.on("opens") {
		e.profile(ctx, "start", "opens")
	}
	for _, path := range allPaths {
		if !c.on("opens") {
			break
		}
		dial, dur, maxOps := e.dial[path], c.openDur, 1<<30
		if path == pathDirect {
			// Every direct connect leaves a TIME_WAIT port: bound them.
			dur, maxOps = min(dur, 2*time.Second), 15000
		}
		res, err := opens(ctx, dial, c.openPar, dur, maxOps, e.meter())
		if err != nil {
			if aerr := e.alive(); aerr != nil {
				return aerr
			}
			return fmt.Errorf("opens over %s after %d: %w", path, res.Ops, err)
		}
		per := func(who string) float64 { return res.CPU[who] / float64(res.Ops) * 1e6 }
		logf("opens  %-6s: %8.0f /s (p50 %v, p99 %v, %d in %v; CPU µs per open: relay %.0f agent %.0f cli %.0f echo %.0f harness %.0f, other processes %.0f)",
			path, res.perSec(), res.Latency.pct(50).Round(time.Microsecond), res.Latency.pct(99).Round(time.Microsecond), res.Ops, res.Dur.Round(time.Millisecond),
			per("relay"), per("agent"), per("cli"), per("echo"), per("harness"), per("other"))
		if c.perfstat {
			var parts []string
			for _, who := range []string{"harness", "relay", "agent", "cli", "echo"} {
				if v, ok := res.CPU[who+" syscalls"]; ok && v > 0 {
					parts = append(parts, fmt.Sprintf("%s %.1f/%.1f", who, v/float64(res.Ops), res.CPU[who+" context-switches"]/float64(res.Ops)))
				}
			}
			logf("    per open, syscalls/context switches: %s", strings.Join(parts, ", "))
			if c.extraEvents {
				logExtraEvents(res.CPU, float64(res.Ops), "open")
			}
		}
		rep.opens[path] = res
	}
	if c.pprofMode && c.on("opens") {
		e.profile(ctx, "stop", "opens")
	}

	if c.on("hol") {
		if err := e.measureHOL(ctx, rep, p); err != nil {
			return fmt.Errorf("head-of-line: %w", err)
		}
	}
	return e.alive()
}

// logExtraEvents logs the -perfstat-events counts of every process
// ("relay write", ...) divided by n, the operations of the run.
func logExtraEvents(u map[string]float64, n float64, per string) {
	var keys []string
	for k := range u {
		if strings.Contains(k, " ") && !strings.HasSuffix(k, " syscalls") && !strings.HasSuffix(k, " context-switches") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		logf("      %-28s %6.2f per %s", k, u[k]/n, per)
	}
}

// pacedRate is the heavy stream of the head-of-line figure: 20 MB/s each
// way, well above the agent's default DedicatedRate (8 MiB/s, both
// directions counted) and well below what 2 cores can carry, so the
// figure shows queueing behind the heavy stream rather than a CPU
// shortage.
const pacedRate = 20e6

// measureHOL measures 64-byte round trips beside a paced heavy stream,
// first with the agent as configured (dedicated connections on), then
// with the agent restarted with --dedicated-rate -1 (shared session only).
func (e *env) measureHOL(ctx context.Context, rep *report, p *payload) error {
	n := e.cfg.rttSamples
	one := func(path, key string) error {
		// The idle baseline right before, on the same agent: a p99 is the
		// 20th worst of 2000 samples, and the machine's load drifts.
		idle, err := pingPong(ctx, e.dial[path], 64, 50, n)
		if err != nil {
			return fmt.Errorf("%s idle: %w", key, err)
		}
		rep.hol[key+" idle"] = holResult{rttResult: idle}
		moved0 := e.agent.count(movedLine)
		res, rate, err := pingBesidePaced(ctx, e.dial[path], p, pacedRate, n)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		moved := 0
		if path != pathDirect {
			moved = e.agent.count(movedLine) - moved0
		}
		logf("hol %-16s 64 B beside a %.0f MB/s stream (got %.1f MB/s, moved %d): p50 %v p99 %v (idle just before: p50 %v p99 %v)", key, pacedRate/1e6, rate/1e6, moved,
			res.pct(50).Round(time.Microsecond), res.pct(99).Round(time.Microsecond), idle.pct(50).Round(time.Microsecond), idle.pct(99).Round(time.Microsecond))
		rep.hol[key] = holResult{rttResult: res, Rate: rate, Moved: moved}
		return nil
	}
	if e.cfg.dedRate >= 0 {
		for _, path := range allPaths {
			key := path + " dedicated"
			if path == pathDirect {
				key = path
			}
			if err := one(path, key); err != nil {
				return err
			}
		}
	}
	logf("restarting the agent with --dedicated-rate -1 (shared session only)")
	e.agent.stop(5 * time.Second)
	if err := e.startAgent(ctx, -1); err != nil {
		return err
	}
	for _, path := range tunnelPaths {
		if _, err := opens(ctx, e.dial[path], 2, 200*time.Millisecond, 50, nopMeter{}); err != nil {
			return fmt.Errorf("warm-up %s: %w", path, err)
		}
		if err := one(path, path+" shared"); err != nil {
			return err
		}
	}
	return nil
}

// measureIdle opens K tunnels over path that stay idle and reads the RSS
// of every process before and after.
func (e *env) measureIdle(ctx context.Context, rep *report, path string) error {
	k := e.cfg.idleK
	time.Sleep(time.Second)
	snap := func() idleSnap {
		s := idleSnap{RSS: map[string]int64{}, Threads: map[string]int64{}}
		for _, p := range e.procs() {
			s.RSS[p.name], _ = rssBytes(p.pid())
			s.Threads[p.name] = threads(p.pid())
		}
		if e.cfg.pprofMode {
			s.Mem = map[string]memStats{}
			var m memStats
			if debugGet(ctx, e.relayDebug, "/perf/mem", &m) == nil {
				s.Mem["relay"] = m
			}
			if debugGet(ctx, e.agentDebug, "/perf/mem", &m) == nil {
				s.Mem["agent"] = m
			}
			if e.cliDebug != "" && debugGet(ctx, e.cliDebug, "/perf/mem", &m) == nil {
				s.Mem["cli"] = m
			}
		}
		return s
	}
	var r idleResult
	r.K = k
	r.Before = snap()
	t0 := time.Now()
	octx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cs, err := openIdle(octx, e.dial[path], k, 16)
	if err != nil {
		return err
	}
	r.OpenDur = time.Since(t0)
	time.Sleep(2 * time.Second)
	r.After = snap()
	if e.cfg.pprofMode {
		e.saveProfile(ctx, "heap", fmt.Sprintf("idle-%s-%d", path, k))
		e.saveProfile(ctx, "goroutine", fmt.Sprintf("idle-%s-%d", path, k))
	}
	logf("idle %s: %d tunnels open in %v; relay RSS %+.1f MiB, agent %+.1f MiB, nanodems-tunnel %+.1f MiB, echo %+.1f MiB",
		path, k, r.OpenDur.Round(time.Millisecond),
		float64(r.After.RSS["relay"]-r.Before.RSS["relay"])/(1<<20),
		float64(r.After.RSS["agent"]-r.Before.RSS["agent"])/(1<<20),
		float64(r.After.RSS["cli"]-r.Before.RSS["cli"])/(1<<20),
		float64(r.After.RSS["echo"]-r.Before.RSS["echo"])/(1<<20))
	for _, who := range []string{"relay", "agent", "cli"} {
		if h, ok := r.heapPerConn(who); ok {
			b, a := r.Before.Mem[who], r.After.Mem[who]
			logf("idle %s: %s Go heap+stacks %+.1f KiB per tunnel (heap %+.1f, stacks %+.1f), %+.2f goroutines per tunnel", path, who, h/1024,
				(float64(a.HeapInuse)-float64(b.HeapInuse))/float64(k)/1024, (float64(a.StackInuse)-float64(b.StackInuse))/float64(k)/1024,
				float64(a.Goroutines-b.Goroutines)/float64(k))
		}
	}
	t0 = time.Now()
	closeAll(cs, 16)
	r.CloseDur = time.Since(t0)
	time.Sleep(2 * time.Second)
	r.Closed = snap()
	rep.idle[path] = r
	return nil
}

// pingUnderLoad measures 64-byte round trips on one connection while a
// second connection to the same target pushes bulk data both ways, at
// rate bytes/s each way or (rate 0) as fast as it can. On a tunnel both
// share the relay's path to the agent until the agent moves the heavy one
// to a dedicated connection.
func pingUnderLoad(ctx context.Context, dial dialFunc, p *payload, rate float64, samples int) (rttResult, error) {
	res, _, err := pingBeside(ctx, dial, p, rate, samples, 200*time.Millisecond)
	return res, err
}

// pingBesidePaced is pingUnderLoad with a paced heavy stream, after a
// settling time that lets the agent see its rate and move it. It also
// returns the rate the heavy stream achieved (bytes/s read back).
func pingBesidePaced(ctx context.Context, dial dialFunc, p *payload, rate float64, samples int) (rttResult, float64, error) {
	return pingBeside(ctx, dial, p, rate, samples, time.Second)
}

func pingBeside(ctx context.Context, dial dialFunc, p *payload, rate float64, samples int, settle time.Duration) (rttResult, float64, error) {
	bulk, err := dial(ctx)
	if err != nil {
		return rttResult{}, 0, err
	}
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	start := time.Now()
	go func() { // writer
		defer func() { done <- struct{}{} }()
		var sent int64
		for i := 0; lctx.Err() == nil; i++ {
			if p.each(i, 4<<20, func(b []byte) error {
				if lctx.Err() != nil {
					return lctx.Err()
				}
				if _, err := bulk.Write(b); err != nil {
					return err
				}
				sent += int64(len(b))
				if rate > 0 {
					due := start.Add(time.Duration(float64(sent) / rate * 1e9))
					if d := time.Until(due); d > 0 {
						t := time.NewTimer(d)
						defer t.Stop()
						select {
						case <-t.C:
						case <-lctx.Done():
							return lctx.Err()
						}
					}
				}
				return nil
			}) != nil {
				return
			}
		}
	}()
	var got atomic.Int64
	go func() { // reader
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 64<<10)
		for {
			n, err := bulk.Read(buf)
			got.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	select { // let the bulk flow reach its pace (and the agent move it)
	case <-time.After(settle):
	case <-ctx.Done():
	}
	g0, t0 := got.Load(), time.Now()
	res, err := pingPong(ctx, dial, 64, 50, samples)
	achieved := float64(got.Load()-g0) / time.Since(t0).Seconds()
	cancel()
	bulk.Close()
	<-done
	<-done
	return res, achieved, err
}

// median returns the run with the median MB/s of those of path and n.
func median(runs []tpRun, path string, n int) (tpRun, []tpRun) {
	var sel []tpRun
	for _, r := range runs {
		if r.Path == path && r.Conns == n {
			sel = append(sel, r)
		}
	}
	if len(sel) == 0 {
		return tpRun{}, nil
	}
	sort.Slice(sel, func(i, j int) bool { return sel[i].MBps() < sel[j].MBps() })
	return sel[len(sel)/2], sel
}

// envFor is the extra environment of one tunnel process (relay, agent or
// cli): every -server-env entry without a role prefix, and those with its
// own.
func (c *config) envFor(role string) []string {
	var env []string
	for _, kv := range c.serverEnv {
		if r, rest, ok := strings.Cut(kv, ":"); ok && !strings.Contains(r, "=") {
			if r == role {
				env = append(env, rest)
			}
			continue
		}
		env = append(env, kv)
	}
	return env
}
