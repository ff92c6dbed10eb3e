package main

// The peers figure (-peers): frp, the tunnel a user would otherwise pick,
// measured beside the operator's CLI path and direct loopback TCP in the
// same run, with the same clients, against the same echo target. frps and
// frpc are built from the module perf/peers (a pinned require of its own,
// so the product's module and its test run never see frp) into a cache
// directory, and run on loopback with their default transport: TLS on,
// one multiplexed (yamux) connection from frpc to frps. chisel, the other
// tunnel users pick, is measured the same way (chisel.go).

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Paths of the peers figure, besides pathCLI and pathDirect.
const (
	pathFrpTCP  = "frp-tcp"  // client → frps remote port → frpc (yamux over TLS) → echo
	pathFrpSTCP = "frp-stcp" // client → frpc visitor → frps (TLS) → frpc (TLS) → echo
)

// peerColumns are the paths of the peers figure in report order: the
// table has a column for each, measured or not (peerHeader follows it).
var peerColumns = []string{pathDirect, pathCLI, pathFrpTCP, pathFrpSTCP, pathChisel}

// peerPaths are the paths measured: peerColumns and the bare chains
// (bare.go), or the subset -paths names.
var peerPaths = slices.Concat(peerColumns, barePaths)

// isBare says whether path is a bare chain, which only throughput and
// the round trip measure.
func isBare(path string) bool { return bareChains[path] != nil }

// peerStreams are the stream counts of the throughput figures.
var peerStreams = []int{1, 8, 64}

// Load figure: loadConns connections, each echoing loadSize bytes every
// loadEvery, for loadFor.
const (
	loadConns = 1000
	loadSize  = 64
	loadEvery = 100 * time.Millisecond
	loadFor   = 10 * time.Second
)

// frpSecret and frpToken are the stcp proxy's secret and the frps auth
// token of the run: loopback only, never reused.
const (
	frpToken  = "nanodems-perf-token"
	frpSecret = "nanodems-perf-secret"
)

// frp is a running frps with a frpc beside the echo target (a tcp and an
// stcp proxy) and a second frpc with the stcp visitor.
type frp struct {
	bin, dir                    string
	echoAddr                    string
	serverAddr                  string // frps control port
	tcpAddr                     string // frps remote port of the tcp proxy
	visitorAddr                 string // the visitor's local listener
	frps, frpc, visitor         *proc
	serverConf, clientConf, vis string   // config files
	env                         []string // extra environment of the three (-server-env frp:K=V)
}

// buildFrp builds frps and frpc from perf/peers into a cache directory
// named after that module's go.mod and go.sum, unless they are already
// there.
func buildFrp(ctx context.Context, root string) (string, error) {
	return buildPeer(ctx, root, "perf/peers", "frp", []string{"noweb"},
		"github.com/fatedier/frp/cmd/frps", "github.com/fatedier/frp/cmd/frpc")
}

// buildPeer builds pkgs of the module in root's directory rel (a pinned
// require of its own) into a cache directory named after name and the
// module's go.mod and go.sum, unless every binary is already there; it
// returns that directory.
func buildPeer(ctx context.Context, root, rel, name string, tags []string, pkgs ...string) (string, error) {
	mod := filepath.Join(root, filepath.FromSlash(rel))
	gomod, err := os.ReadFile(filepath.Join(mod, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("%s: %w", rel, err)
	}
	sum, err := os.ReadFile(filepath.Join(mod, "go.sum"))
	if err != nil {
		return "", fmt.Errorf("%s: %w", rel, err)
	}
	h := sha256.Sum256(append(gomod, sum...))
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "nanodems-perf", name+"-"+hex.EncodeToString(h[:6]))
	built := true
	for _, pkg := range pkgs {
		built = built && fileExists(filepath.Join(dir, path.Base(pkg)))
	}
	if built {
		logf("%s: using %s", name, dir)
		return dir, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	args := []string{"build"}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	args = append(append(args, "-o", dir+string(os.PathSeparator)), pkgs...)
	logf("%s: go %s (in %s)", name, strings.Join(args, " "), rel)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = mod
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s (in %s): %v\n%s", strings.Join(args, " "), rel, err, out)
	}
	return dir, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// frpVersion is the version frps reports.
func frpVersion(bin string) string {
	out, err := exec.Command(filepath.Join(bin, "frps"), "--version").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

// startFrp writes the configurations into dir (made if need be) and
// starts frps, frpc and the visitor; it returns once a byte echoes through
// both proxies.
func startFrp(ctx context.Context, bin, dir, echoAddr string, env []string) (*frp, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f := &frp{bin: bin, dir: dir, echoAddr: echoAddr, env: env}
	var err error
	for _, a := range []*string{&f.serverAddr, &f.tcpAddr, &f.visitorAddr} {
		if *a, err = freeAddr(); err != nil {
			return nil, err
		}
	}
	_, sport, _ := net.SplitHostPort(f.serverAddr)
	_, rport, _ := net.SplitHostPort(f.tcpAddr)
	_, vport, _ := net.SplitHostPort(f.visitorAddr)
	_, eport, _ := net.SplitHostPort(echoAddr)
	// Defaults everywhere but addresses, the token and the log level
	// (warn, as the relay runs here): transport.tls.enable and
	// transport.tcpMux are on by default.
	f.serverConf = filepath.Join(dir, "frps.toml")
	f.clientConf = filepath.Join(dir, "frpc.toml")
	f.vis = filepath.Join(dir, "frpc-visitor.toml")
	files := map[string]string{
		f.serverConf: fmt.Sprintf("bindAddr = \"127.0.0.1\"\nbindPort = %s\nauth.token = %q\nlog.level = \"warn\"\n", sport, frpToken),
		f.clientConf: fmt.Sprintf(`serverAddr = "127.0.0.1"
serverPort = %s
auth.token = %q
log.level = "warn"
loginFailExit = true

[[proxies]]
name = "echo-tcp"
type = "tcp"
localIP = "127.0.0.1"
localPort = %s
remotePort = %s

[[proxies]]
name = "echo-stcp"
type = "stcp"
secretKey = %q
localIP = "127.0.0.1"
localPort = %s
`, sport, frpToken, eport, rport, frpSecret, eport),
		f.vis: fmt.Sprintf(`serverAddr = "127.0.0.1"
serverPort = %s
auth.token = %q
log.level = "warn"
loginFailExit = true

[[visitors]]
name = "echo-stcp-visitor"
type = "stcp"
serverName = "echo-stcp"
secretKey = %q
bindAddr = "127.0.0.1"
bindPort = %s
`, sport, frpToken, frpSecret, vport),
	}
	for name, body := range files {
		if err := os.WriteFile(name, []byte(body), 0o600); err != nil {
			return nil, err
		}
	}
	if err := f.start(ctx); err != nil {
		f.stop()
		return nil, err
	}
	return f, nil
}

// start starts (or restarts) the three processes and waits until both
// proxies echo.
func (f *frp) start(ctx context.Context) error {
	var err error
	if f.frps, err = children.start(f.dir, "frps", filepath.Join(f.bin, "frps"), []string{"-c", f.serverConf}, f.env); err != nil {
		return err
	}
	if err := waitListen(ctx, f.frps, f.serverAddr); err != nil {
		return err
	}
	if f.frpc, err = children.start(f.dir, "frpc", filepath.Join(f.bin, "frpc"), []string{"-c", f.clientConf}, f.env); err != nil {
		return err
	}
	if f.visitor, err = children.start(f.dir, "frpc-visitor", filepath.Join(f.bin, "frpc"), []string{"-c", f.vis}, f.env); err != nil {
		return err
	}
	if err := waitEcho(ctx, f.frpc, f.tcpAddr); err != nil {
		return fmt.Errorf("frp tcp proxy: %w", err)
	}
	if err := waitEcho(ctx, f.visitor, f.visitorAddr); err != nil {
		return fmt.Errorf("frp stcp visitor: %w", err)
	}
	return nil
}

func (f *frp) stop() {
	for _, p := range []*proc{f.visitor, f.frpc, f.frps} {
		if p != nil {
			p.stop(5 * time.Second)
		}
	}
}

// restart gives the next load figure fresh heaps, as env.restart does for
// ours.
func (f *frp) restart(ctx context.Context) error {
	f.stop()
	return f.start(ctx)
}

// waitListen waits until addr accepts a connection.
func waitListen(ctx context.Context, p *proc, addr string) error {
	return pollUntil(ctx, p, addr, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// waitEcho waits until a byte written to addr comes back.
func waitEcho(ctx context.Context, p *proc, addr string) error {
	return pollUntil(ctx, p, addr, func() error { return openOnceTimeout(addr, time.Second) })
}

func openOnceTimeout(addr string, d time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, d)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(d))
	b := []byte{7}
	if _, err := c.Write(b); err != nil {
		return err
	}
	_, err = io.ReadFull(c, b)
	return err
}

func pollUntil(ctx context.Context, p *proc, addr string, try func() error) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := try()
		if err == nil {
			return nil
		}
		if aerr := p.alive(); aerr != nil {
			return aerr
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: nothing through %s after 30s (%v); see %s", p.name, addr, err, p.log)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// others are the tunnels measured beside ours.
type others struct {
	frp    *frp
	chisel *chisel
}

// tunnelProcs are the processes a path's bytes cross between the client
// and the target (direct: none).
func (e *env) tunnelProcs(o others, path string) []*proc {
	switch path {
	case pathCLI:
		return []*proc{e.relay, e.agent, e.cli}
	case pathFrpTCP:
		return []*proc{o.frp.frps, o.frp.frpc}
	case pathFrpSTCP:
		return []*proc{o.frp.frps, o.frp.frpc, o.frp.visitor}
	case pathChisel:
		return []*proc{o.chisel.server, o.chisel.client}
	}
	return nil
}

// peerRun is one repetition of every figure for one path.
type peerRun struct {
	MBps     map[int]float64 // by stream count
	P50, P99 time.Duration
	Opens    float64            // per second
	OpenCPU  map[string]float64 // µs of CPU per connection opened, by tunnel process
	Load     loadResult
}

// openCPUTotal is the CPU per connection opened of all tunnel processes,
// in µs.
func (r peerRun) openCPUTotal() float64 {
	var t float64
	for _, v := range r.OpenCPU {
		t += v
	}
	return t
}

// loadResult is the load figure of one repetition.
type loadResult struct {
	RSS     map[string]int64   // bytes, by process, at the end of the load
	CPU     map[string]float64 // seconds, by process, over the load
	P50     time.Duration      // round trips of the load's echoes
	P99     time.Duration
	Echoes  int64
	OpenDur time.Duration
}

func (l loadResult) rssTotal() int64 {
	var t int64
	for _, v := range l.RSS {
		t += v
	}
	return t
}

func (l loadResult) cpuTotal() float64 {
	var t float64
	for _, v := range l.CPU {
		t += v
	}
	return t
}

// runPeers is -peers: our installation is up (e); it adds frp and chisel and
// measures every path, repetition by repetition, the paths taking turns.
func runPeers(ctx context.Context, c *config, e *env, root string) error {
	started := time.Now()
	bin, err := buildFrp(ctx, root)
	if err != nil {
		return err
	}
	f, err := startFrp(ctx, bin, filepath.Join(e.tmp, "frp"), e.echoAddr, e.cfg.envFor("frp"))
	if err != nil {
		return fmt.Errorf("frp: %w", err)
	}
	defer f.stop()
	cbin, err := buildChisel(ctx, root)
	if err != nil {
		return err
	}
	ch, err := startChisel(ctx, cbin, filepath.Join(e.tmp, "chisel"), e.echoAddr, e.cfg.envFor("chisel"))
	if err != nil {
		return fmt.Errorf("chisel: %w", err)
	}
	defer ch.stop()
	var d net.Dialer
	dialTo := func(addr string) dialFunc {
		return func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	e.dial[pathFrpTCP] = dialTo(f.tcpAddr)
	e.dial[pathFrpSTCP] = dialTo(f.visitorAddr)
	e.dial[pathChisel] = dialTo(ch.fwdAddr)
	for _, path := range peerPaths {
		if !isBare(path) {
			continue
		}
		addr, err := startBare(ctx, e.tmp, path, e.echoAddr)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		e.dial[path] = dialTo(addr)
		logf("%s up: %s (%s)", path, addr, strings.Join(bareChains[path], ", "))
	}
	logf("frp up: frps %s (pid %d), tcp proxy %s, stcp visitor %s; frpc pid %d, visitor pid %d",
		f.serverAddr, f.frps.pid(), f.tcpAddr, f.visitorAddr, f.frpc.pid(), f.visitor.pid())
	logf("chisel up: server %s (pid %d), reverse forward %s; client pid %d", ch.serverAddr, ch.server.pid(), ch.fwdAddr, ch.client.pid())

	p := &payload{pool: make([]byte, 16<<20+12345), chunk: c.chunk}
	rand.Read(p.pool)
	runs := map[string][]peerRun{}
	for rep := range c.repeats {
		for _, path := range peerPaths {
			r, err := e.peerRep(ctx, others{f, ch}, path, p)
			if err != nil {
				return fmt.Errorf("%s, repetition %d: %w", path, rep+1, err)
			}
			runs[path] = append(runs[path], r)
		}
	}
	pr := &peersReport{
		cfg: c, machine: machineInfo(root), frp: frpVersion(bin), chisel: chiselVersion(cbin), runs: runs,
		elapsed: time.Since(started), niced: niceness(),
	}
	pr.compute()
	md := pr.markdown()
	fmt.Print(pr.table())
	fmt.Print(pr.shapeSection())
	if c.write {
		if err := os.WriteFile(filepath.Join(c.outDir, "perf-peers.md"), []byte(md), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(c.outDir, "perf-peers.svg"), []byte(pr.svg()), 0o644); err != nil {
			return err
		}
		logf("wrote %s/perf-peers.md, perf-peers.svg", c.outDir)
	}
	return nil
}

// peerRep measures one repetition of every figure over path. The load
// figure comes first, on freshly started tunnel processes, so that the
// bulk runs before it do not decide its memory.
func (e *env) peerRep(ctx context.Context, o others, path string, p *payload) (peerRun, error) {
	c := e.cfg
	r := peerRun{MBps: map[int]float64{}}
	dial := e.dial[path]

	if !isBare(path) {
		// Direct has no tunnel process: its load run is the floor of the
		// echo figures, what the harness and the echo target manage.
		var err error
		switch path {
		case pathCLI:
			err = e.restart(ctx)
		case pathFrpTCP, pathFrpSTCP:
			err = o.frp.restart(ctx)
		case pathChisel:
			err = o.chisel.restart(ctx)
		}
		if err != nil {
			return r, fmt.Errorf("restart: %w", err)
		}
		if _, err := opens(ctx, dial, 4, 300*time.Millisecond, 100, nopMeter{}); err != nil {
			return r, fmt.Errorf("warm-up: %w", err)
		}
		var atStart, during func()
		if path == pathCLI && e.cfg.pprofMode {
			atStart = func() { e.saveCPUProfiles(ctx, loadFor/2, "load") }
			during = func() {
				e.saveProfile(ctx, "heap", "load")
				e.saveProfile(ctx, "goroutine", "load")
				for _, x := range []struct{ who, addr string }{{"relay", e.relayDebug}, {"agent", e.agentDebug}, {"nanodems-tunnel", e.cliDebug}} {
					var m memStats
					if debugGet(ctx, x.addr, "/perf/mem", &m) == nil {
						logf("load   %s: heap in use %.1f MiB, stacks %.1f MiB, Sys %.1f MiB, %d goroutines", x.who,
							float64(m.HeapInuse)/(1<<20), float64(m.StackInuse)/(1<<20), float64(m.Sys)/(1<<20), m.Goroutines)
					}
				}
			}
		}
		if r.Load, err = load(ctx, dial, e.tunnelProcs(o, path), atStart, during); err != nil {
			return r, fmt.Errorf("load: %w", err)
		}
		logf("load   %-8s %d conns × %d B every %v for %v: %d echoes, RSS %s MiB, CPU %.2f s, echo p50 %v p99 %v (opened in %v)",
			path, loadConns, loadSize, loadEvery, loadFor, r.Load.Echoes, fmtParts(r.Load.RSS, func(v int64) string { return fmt.Sprintf("%.0f", float64(v)/(1<<20)) }),
			r.Load.cpuTotal(), r.Load.P50.Round(time.Microsecond), r.Load.P99.Round(time.Microsecond), r.Load.OpenDur.Round(time.Millisecond))
	}

	if !c.on("throughput") && !c.on("rtt") && !c.on("opens") {
		return r, e.alive() // -only load
	}
	for _, n := range peerStreams {
		per := int64(c.totalMiB) << 20 / int64(n)
		sums := make([][32]byte, n)
		for i := range sums {
			sums[i] = p.sum(i, per)
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		res, err := throughputEnds(rctx, dial, n, per, p, sums, nopMeter{}, false)
		cancel()
		if err != nil {
			return r, fmt.Errorf("throughput, %d streams: %w", n, err)
		}
		r.MBps[n] = res.MBps()
		logf("tp     %-8s %2d streams: %8.1f MB/s", path, n, res.MBps())
	}

	rtt, err := pingPong(ctx, dial, 64, 200, c.rttSamples)
	if err != nil {
		return r, fmt.Errorf("round trip: %w", err)
	}
	r.P50, r.P99 = rtt.pct(50), rtt.pct(99)
	logf("rtt    %-8s 64 B: p50 %v p99 %v", path, r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond))

	if isBare(path) {
		return r, e.alive()
	}
	dur, maxOps := c.openDur, 1<<30
	if path == pathDirect {
		dur, maxOps = min(dur, 2*time.Second), 15000 // every direct connect leaves a TIME_WAIT port
	}
	procs := e.tunnelProcs(o, path)
	op, err := opens(ctx, dial, c.openPar, dur, maxOps, &tunnelMeter{procs: procs})
	if err != nil {
		return r, fmt.Errorf("opens after %d: %w", op.Ops, err)
	}
	r.Opens = op.perSec()
	if len(procs) > 0 && op.Ops > 0 {
		r.OpenCPU = map[string]float64{}
		for name, sec := range op.CPU {
			r.OpenCPU[name] = sec * 1e6 / float64(op.Ops)
		}
		logf("opens  %-8s %8.0f /s, CPU per connection %.0f µs (%s µs)", path, r.Opens, r.openCPUTotal(),
			fmtParts(r.OpenCPU, func(v float64) string { return fmt.Sprintf("%.0f", v) }))
	} else {
		logf("opens  %-8s %8.0f /s", path, r.Opens)
	}
	return r, e.alive()
}

func fmtParts[T any](m map[string]T, f func(T) string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+" "+f(m[k]))
	}
	return strings.Join(parts, ", ")
}

// load opens loadConns connections, then on each echoes loadSize bytes
// every loadEvery (starts spread over the first interval) for loadFor,
// checking every echo. CPU of procs is read around the loadFor window,
// their RSS at its end, with every connection still open; during, if
// set, runs then too, and atStart, if set, runs at the window's start on
// its own goroutine.
func load(ctx context.Context, dial dialFunc, procs []*proc, atStart, during func()) (loadResult, error) {
	res := loadResult{RSS: map[string]int64{}, CPU: map[string]float64{}}
	t0 := time.Now()
	octx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	cs, err := openIdle(octx, dial, loadConns, 16)
	cancel()
	if err != nil {
		return res, fmt.Errorf("open %d connections: %w", loadConns, err)
	}
	defer closeAll(cs, 16)
	res.OpenDur = time.Since(t0)

	cpu := &tunnelMeter{procs: procs}
	cpu.start()
	lctx, stop := context.WithTimeout(ctx, loadFor)
	defer stop()
	var profiling sync.WaitGroup
	defer profiling.Wait()
	if atStart != nil {
		profiling.Go(atStart)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		first  error
		echoes atomic.Int64
		lat    = make([][]time.Duration, len(cs))
	)
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, in := make([]byte, loadSize), make([]byte, loadSize)
			rand.Read(out)
			offset := time.Duration(i) * loadEvery / time.Duration(len(cs))
			next := time.Now().Add(offset)
			for {
				t := time.NewTimer(time.Until(next))
				select {
				case <-lctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
				out[0]++
				c.SetDeadline(time.Now().Add(10 * time.Second))
				s := time.Now()
				_, err := c.Write(out)
				if err == nil {
					_, err = io.ReadFull(c, in)
				}
				if err == nil && string(in) != string(out) {
					err = errors.New("echo differs")
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("connection %d: %w", i, err)
					}
					mu.Unlock()
					return
				}
				lat[i] = append(lat[i], time.Since(s))
				echoes.Add(1)
				next = next.Add(loadEvery)
			}
		}()
	}
	<-lctx.Done()
	// RSS with every connection open, before the echoes stop.
	for _, p := range procs {
		res.RSS[p.name], _ = rssBytes(p.pid())
	}
	if during != nil {
		during() // -pprof: profiles with every connection still open
	}
	wg.Wait()
	res.CPU = cpu.stop()
	if first != nil {
		return res, first
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	rr := rttResult{Samples: all}
	res.P50, res.P99, res.Echoes = rr.pct(50), rr.pct(99), echoes.Load()
	return res, nil
}

// tunnelMeter is the CPU seconds (utime+stime) each of a path's tunnel
// processes spends over a run.
type tunnelMeter struct {
	procs  []*proc
	before map[string]float64
}

func (m *tunnelMeter) start() {
	m.before = map[string]float64{}
	for _, p := range m.procs {
		m.before[p.name], _ = cpuSeconds(p.pid())
	}
}

func (m *tunnelMeter) stop() map[string]float64 {
	d := map[string]float64{}
	for _, p := range m.procs {
		v, _ := cpuSeconds(p.pid())
		d[p.name] = v - m.before[p.name]
	}
	return d
}

// niceness is this process's nice value, for the report.
func niceness() int {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 17 {
		return 0
	}
	n, _ := strconv.Atoi(f[16]) // field 19 of stat: nice
	return n
}
