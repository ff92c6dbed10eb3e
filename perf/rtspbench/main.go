// Command rtspbench measures the RTSP gateway (docs/perf-rtsp.md):
// concurrent 4 Mbit/s viewers until the CPU saturates, with and without
// fan-out, on the gnet event loops and on goroutine-per-connection, and
// the gateway's CPU per Gbit/s delivered.
//
//	go run ./perf/rtspbench                       # both setups, full sweep
//	go run ./perf/rtspbench -setups gateway -viewers 100,400
//
// Every part runs in its own process so its CPU can be told apart: the
// camera (a minimal RTSP server, camera.go), the gateway under test
// (either rtsp.Gateway alone with the camera on loopback, "gateway", or a
// whole relay with an enrolled agent, "relay"), and this process, which
// runs the viewers: raw RTSP clients that play over interleaved TCP and
// count bytes. They share the machine's cores, so a figure is what one
// box does with all of it, and the gateway's own CPU is reported apart.
package main

import (
	"bufio"
	"context"

	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nanodems/connector/agent"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/gctune"
	"github.com/nanodems/connector/relay"
	"github.com/nanodems/connector/rtsp"
)

func main() {
	if len(os.Args) > 1 && !strings.HasPrefix(os.Args[1], "-") {
		var err error
		switch os.Args[1] {
		case "camera":
			err = roleCamera(os.Args[2:])
		case "gateway":
			err = roleGateway(os.Args[2:])
		case "relay":
			err = roleRelay(os.Args[2:])
		case "agent":
			err = roleAgent(os.Args[2:])
		default:
			err = fmt.Errorf("unknown role %q", os.Args[1])
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "rtspbench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "rtspbench:", err)
		os.Exit(1)
	}
}

// --- roles (child processes) ------------------------------------------------

func waitSignal() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	<-ch
}

func roleCamera(args []string) error {
	fs := flag.NewFlagSet("camera", flag.ExitOnError)
	rate := fs.Int("rate", 4_000_000, "bits per second per session")
	fs.Parse(args)
	c, err := startFastCamera("127.0.0.1:0", *rate)
	if err != nil {
		return err
	}
	fmt.Println("ready", c.ln.Addr())
	waitSignal()
	c.close()
	return nil
}

// staticBackend lets every grant in and dials the camera directly: the
// gateway alone, without tunnels.
type staticBackend struct{ camera string }

func (b staticBackend) Authorize(context.Context, string, string) (rtsp.Principal, error) {
	return rtsp.Principal{Tenant: "bench"}, nil
}

func (b staticBackend) Dial(ctx context.Context, _ rtsp.Principal, _ string) (net.Conn, rtsp.Target, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", b.camera)
	host, port, _ := net.SplitHostPort(b.camera)
	p, _ := strconv.Atoi(port)
	return c, rtsp.Target{Host: host, Port: p}, err
}

func (b staticBackend) Credentials(context.Context, string) (string, string, bool) {
	return "", "", false
}

func roleGateway(args []string) error {
	gctune.Apply() // as nanodems-relay, which runs the gateway, does
	fs := flag.NewFlagSet("gateway", flag.ExitOnError)
	camera := fs.String("camera", "", "camera address")
	mode := fs.String("mode", "gnet", "gnet or goroutines")
	fanout := fs.Bool("fanout", true, "share camera sessions")
	profile := fs.String("cpuprofile", "", "write a CPU profile of the whole run here")
	fs.Parse(args)
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	g, err := rtsp.New(rtsp.Config{Addr: "127.0.0.1:0", Backend: staticBackend{*camera}, Mode: rtsp.ListenerMode(*mode), NoFanOut: !*fanout,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	if err := g.Start(); err != nil {
		return err
	}
	fmt.Println("ready", g.Addr())
	usr := make(chan os.Signal, 1)
	signal.Notify(usr, syscall.SIGUSR1)
	go func() {
		for range usr {
			fmt.Println("goroutines", runtime.NumGoroutine())
		}
	}()
	waitSignal()
	s := g.Stats()
	fmt.Fprintf(os.Stderr, "gateway %s fan-out %v: skips %d, drops %d\n", *mode, *fanout, s.Skips.Load(), s.Drops.Load())
	return g.Close()
}

func roleRelay(args []string) error {
	gctune.Apply() // as nanodems-relay does
	fs := flag.NewFlagSet("relay", flag.ExitOnError)
	dir := fs.String("data-dir", "", "")
	fs.Parse(args)
	srv, err := relay.New(relay.Config{DataDir: *dir, APIAddr: "127.0.0.1:0", AgentAddr: "127.0.0.1:0", RTSPAddr: "127.0.0.1:0", PlainHTTP: true,
		NodeName: "bench", Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	fmt.Println("ready", srv.APIURL(), srv.RTSPAddr())
	waitSignal()
	return srv.Close()
}

func roleAgent(args []string) error {
	gctune.Apply() // as nanodems-agent does
	fs := flag.NewFlagSet("agent", flag.ExitOnError)
	dir := fs.String("dir", "", "")
	fs.Parse(args)
	a, err := agent.New(agent.Config{Dir: *dir, AllowLoopback: true, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return a.Run(ctx)
}

// --- child processes ------------------------------------------------------

type child struct {
	name  string
	cmd   *exec.Cmd
	ready []string    // fields of its "ready" line
	lines chan string // its later stdout lines
}

func spawn(name string, env []string, args ...string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{name: name, cmd: cmd, lines: make(chan string, 16)}
	sc := bufio.NewScanner(out)
	line := make(chan string, 1)
	go func() {
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "ready") {
				line <- sc.Text()
			} else {
				select {
				case c.lines <- sc.Text():
				default:
				}
			}
		}
	}()
	select {
	case l := <-line:
		c.ready = strings.Fields(l)[1:]
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		return nil, fmt.Errorf("%s did not start", name)
	}
	return c, nil
}

func (c *child) stop() {
	c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

// cpuSeconds is utime+stime of a process (/proc/PID/stat, fields 14-15).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseFloat(f[11], 64)
	k, _ := strconv.ParseFloat(f[12], 64)
	return (u + k) / 100 // CLK_TCK is 100 on Linux
}

// rssMiB is a process's VmRSS.
func rssMiB(pid int) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// machineBusy is the busy and total jiffies of all CPUs (/proc/stat).
func machineBusy() (busy, total float64) {
	b, _ := os.ReadFile("/proc/stat")
	line := strings.SplitN(string(b), "\n", 2)[0]
	f := strings.Fields(line)[1:]
	for i, v := range f {
		x, _ := strconv.ParseFloat(v, 64)
		total += x
		if i != 3 && i != 4 { // idle, iowait
			busy += x
		}
	}
	return busy, total
}

// --- viewers ----------------------------------------------------------------

// viewer plays url over interleaved TCP and counts what it receives.
type viewer struct {
	c     net.Conn
	bytes atomic.Int64
}

func startViewer(addr, url string) (*viewer, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	v := &viewer{c: c}
	rd := rtsp.NewReader(c, 4096, rtsp.Limits{})
	cseq := 0
	do := func(method, u string, hdr ...string) (*rtsp.Response, error) {
		cseq++
		req := &rtsp.Request{Method: method, URL: u, Header: rtsp.Header{{Name: "CSeq", Value: strconv.Itoa(cseq)}}}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Add(hdr[i], hdr[i+1])
		}
		if _, err := c.Write(req.AppendTo(nil)); err != nil {
			return nil, err
		}
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		for {
			it, err := rd.Next()
			if err != nil {
				return nil, err
			}
			if it.Kind == rtsp.KindResponse {
				if it.Resp.StatusCode != 200 {
					return nil, fmt.Errorf("%s: %d %s", method, it.Resp.StatusCode, it.Resp.Header.Get("X-Nanodems-Error"))
				}
				return it.Resp, nil
			}
		}
	}
	resp, err := do("DESCRIBE", url)
	if err == nil {
		base := strings.TrimSuffix(resp.Header.Get("Content-Base"), "/")
		if resp, err = do("SETUP", base+"/trackID=0", "Transport", "RTP/AVP/TCP;unicast;interleaved=0-1"); err == nil {
			sess := strings.Split(resp.Header.Get("Session"), ";")[0]
			_, err = do("PLAY", base+"/", "Session", sess)
		}
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	c.SetReadDeadline(time.Time{})
	v.bytes.Add(int64(len(rd.Buffered())))
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			v.bytes.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	return v, nil
}

// --- the sweep --------------------------------------------------------------

type point struct {
	Setup, Mode string
	FanOut      bool
	Viewers     int
	Started     int     // viewers that got to PLAY
	OK          int     // viewers that received ≥ 95% of the stream rate
	Mbps        float64 // delivered to all viewers, Mbit/s
	GwCores     float64 // gateway (or relay) process
	AgentCores  float64
	CamCores    float64
	LoadCores   float64 // this process: the viewers
	Busy        float64 // whole machine, cores
	Others      float64 // machine busy less the four processes: other load on the box
	RSSMiB      float64 // gateway (or relay) process resident memory at the end of the window
	CPUPerGbps  float64 // gateway cores per Gbit/s delivered
}

func (p point) sustained() bool { return p.Started == p.Viewers && p.OK*100 >= p.Viewers*95 }

type target struct {
	name   string
	gw     *child
	extra  []*child // agent
	addr   string
	url    string
	remove func()
}

func run() error {
	setups := flag.String("setups", "gateway,relay", "gateway (rtsp.Gateway alone) and/or relay (whole relay + agent)")
	modes := flag.String("modes", "gnet,goroutines", "listener modes")
	fanouts := flag.String("fanout", "on,off", "fan-out on and/or off")
	gwProfile := flag.String("gateway-cpuprofile", "", "CPU profile of the gateway role (setup gateway) into this file, one per listener and fan-out setting")
	list := flag.String("viewers", "50,100,200,400,800,1200,1600", "viewer counts, ascending; a setup stops at the first it cannot sustain")
	rate := flag.Int("rate", 4_000_000, "stream bits per second")
	warm := flag.Duration("warm", 2*time.Second, "wait after the viewers started")
	measure := flag.Duration("measure", 8*time.Second, "measured window")
	retries := flag.Int("retries", 1, "measure a point not sustained again this many times (other load on the box comes and goes)")
	idle := flag.Int("idle", 5000, "idle authorized connections for the memory figure (0: skip)")
	flag.Parse()
	var counts []int
	for _, s := range strings.Split(*list, ",") {
		n, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		counts = append(counts, n)
	}
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	lim.Cur = lim.Max
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)

	cam, err := spawn("camera", nil, "camera", "-rate", strconv.Itoa(*rate))
	if err != nil {
		return err
	}
	defer cam.stop()
	fmt.Printf("machine: %d cores, %s; stream %d bit/s; warm %v, measure %v\n\n", runtime.NumCPU(), runtime.Version(), *rate, *warm, *measure)
	fmt.Println("| setup | listener | fan-out | viewers | playing | ≥95% rate | delivered Mbit/s | gateway cores | agent cores | camera cores | viewers' cores | other load | gateway CPU s per Gbit | gateway RSS MiB |")
	fmt.Println("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	var all []point
	for _, setup := range strings.Split(*setups, ",") {
		for _, mode := range strings.Split(*modes, ",") {
			for _, fo := range strings.Split(*fanouts, ",") {
				fan := fo == "on"
				var extra []string
				if *gwProfile != "" {
					extra = []string{"-cpuprofile", fmt.Sprintf("%s.%s.%s", *gwProfile, mode, onOff(fan))}
				}
				tg, err := startTarget(setup, mode, fan, cam.ready[0], extra...)
				if err != nil {
					return fmt.Errorf("%s/%s: %w", setup, mode, err)
				}
				for _, n := range counts {
					p := measurePoint(tg, setup, mode, fan, n, *rate, cam, *warm, *measure)
					for r := 0; r < *retries && !p.sustained(); r++ {
						time.Sleep(3 * time.Second)
						if q := measurePoint(tg, setup, mode, fan, n, *rate, cam, *warm, *measure); q.OK > p.OK {
							p = q
						}
					}
					all = append(all, p)
					fmt.Printf("| %s | %s | %v | %d | %d | %d | %.0f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f |\n",
						p.Setup, p.Mode, onOff(p.FanOut), p.Viewers, p.Started, p.OK, p.Mbps, p.GwCores, p.AgentCores, p.CamCores, p.LoadCores, p.Others, p.CPUPerGbps, p.RSSMiB)
					if !p.sustained() {
						break
					}
				}
				tg.remove()
			}
		}
	}
	if *idle > 0 {
		fmt.Println()
		fmt.Printf("Idle connections (%d authorized, OPTIONS answered, then silent), gateway alone:\n\n", *idle)
		fmt.Println("| listener | RSS before MiB | RSS after MiB | KiB per idle connection | goroutines per connection |")
		fmt.Println("|---|---:|---:|---:|---:|")
		for _, mode := range strings.Split(*modes, ",") {
			if err := idleFigure(mode, cam.ready[0], *idle); err != nil {
				return err
			}
		}
	}
	fmt.Println()
	fmt.Println("Most viewers sustained (all playing, ≥ 95% of them at ≥ 95% of the stream rate):")
	sort.SliceStable(all, func(i, j int) bool { return all[i].Viewers < all[j].Viewers })
	best := map[string]point{}
	for _, p := range all {
		k := p.Setup + "/" + p.Mode + "/" + onOff(p.FanOut)
		if p.sustained() {
			best[k] = p
		}
	}
	var keys []string
	for k := range best {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := best[k]
		fmt.Printf("- %s: %d viewers, %.0f Mbit/s, gateway %.2f cores, %.2f CPU s per Gbit\n", k, p.Viewers, p.Mbps, p.GwCores, p.CPUPerGbps)
	}
	return nil
}

// idleFigure opens k authorized connections that then stay silent and
// reports the gateway's resident memory per connection.
func idleFigure(mode, camAddr string, k int) error {
	tg, err := startTarget("gateway", mode, true, camAddr)
	if err != nil {
		return err
	}
	defer tg.remove()
	pid := tg.gw.cmd.Process.Pid
	time.Sleep(time.Second)
	before := rssMiB(pid)
	g0 := goroutines(tg.gw)
	conns := make([]net.Conn, 0, k)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	req := (&rtsp.Request{Method: "OPTIONS", URL: tg.url, Header: rtsp.Header{{Name: "CSeq", Value: "1"}}}).AppendTo(nil)
	buf := make([]byte, 4096)
	for range k {
		c, err := net.Dial("tcp", tg.addr)
		if err != nil {
			return err
		}
		conns = append(conns, c)
		if _, err := c.Write(req); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(buf); err != nil {
			return err
		}
	}
	time.Sleep(2 * time.Second)
	after := rssMiB(pid)
	g1 := goroutines(tg.gw)
	fmt.Printf("| %s | %.0f | %.0f | %.1f | %.2f |\n", mode, before, after, (after-before)*1024/float64(k), float64(g1-g0)/float64(k))
	return nil
}

// goroutines asks the gateway role for its goroutine count (SIGUSR1).
func goroutines(c *child) int {
	c.cmd.Process.Signal(syscall.SIGUSR1)
	select {
	case l := <-c.lines:
		n, _ := strconv.Atoi(strings.TrimPrefix(l, "goroutines "))
		return n
	case <-time.After(5 * time.Second):
		return 0
	}
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func startTarget(setup, mode string, fan bool, camAddr string, extra ...string) (*target, error) {
	switch setup {
	case "gateway":
		gw, err := spawn("gateway", nil, append([]string{"gateway", "-camera", camAddr, "-mode", mode, "-fanout=" + strconv.FormatBool(fan)}, extra...)...)
		if err != nil {
			return nil, err
		}
		addr := gw.ready[0]
		return &target{name: setup, gw: gw, addr: addr, url: "rtsp://" + addr + "/h-bench/live?nd_grant=x", remove: gw.stop}, nil
	case "relay":
		return startRelay(mode, fan, camAddr)
	}
	return nil, fmt.Errorf("unknown setup %q", setup)
}

// startRelay runs a relay and an agent, provisions a tenant, site, device
// (the camera) and mints the player URL, as an operator would.
func startRelay(mode string, fan bool, camAddr string) (*target, error) {
	dir, err := os.MkdirTemp("", "rtspbench-")
	if err != nil {
		return nil, err
	}
	env := []string{"NANODEMS_RTSP_LISTENER=" + mode}
	if !fan {
		env = append(env, "NANODEMS_RTSP_FANOUT=off")
	}
	rl, err := spawn("relay", env, "relay", "-data-dir", filepath.Join(dir, "relay"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	fail := func(err error) (*target, error) {
		rl.stop()
		os.RemoveAll(dir)
		return nil, err
	}
	apiURL, rtspAddr := rl.ready[0], rl.ready[1]
	key, err := os.ReadFile(filepath.Join(dir, "relay", "admin-key"))
	if err != nil {
		return fail(err)
	}
	ctx := context.Background()
	api := demo.NewAPI(apiURL, "")
	admin := demo.Admin(strings.TrimSpace(string(key)))
	var t, u, tok, site, en, dev struct {
		ID              string            `json:"id"`
		Token           string            `json:"token"`
		EnrollmentToken string            `json:"enrollment_token"`
		Handles         map[string]string `json:"handles"`
		URL             string            `json:"url"`
	}
	steps := []func() error{
		func() error {
			return api.Do(ctx, "POST", "/api/admin/tenants", map[string]string{"name": "bench"}, &t, admin)
		},
		func() error {
			return api.Do(ctx, "POST", "/api/tenants/"+t.ID+"/users", map[string]string{"email": "bench@bench.invalid", "password": "bench-password-1"}, &u, admin)
		},
		func() error { return api.Do(ctx, "POST", "/api/users/"+u.ID+"/tokens", nil, &tok, admin) },
		func() error {
			return api.Do(ctx, "POST", "/api/tenants/"+t.ID+"/sites", map[string]any{"name": "bench", "allow_loopback": true}, &site, admin)
		},
		func() error { return api.Do(ctx, "POST", "/api/sites/"+site.ID+"/enrollment-tokens", nil, &en, admin) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return fail(err)
		}
	}
	agentDir := filepath.Join(dir, "agent")
	if _, err := agent.Enroll(ctx, agent.EnrollOptions{RelayURL: apiURL, Token: en.EnrollmentToken, Dir: agentDir}); err != nil {
		return fail(err)
	}
	ag, err := spawnAgent(agentDir)
	if err != nil {
		return fail(err)
	}
	host, port, _ := net.SplitHostPort(camAddr)
	pn, _ := strconv.Atoi(port)
	if err := api.Do(ctx, "POST", "/api/sites/"+site.ID+"/devices", map[string]any{"host": host, "ports": []int{pn}}, &dev, demo.Bearer(tok.Token)); err != nil {
		ag.stop()
		return fail(err)
	}
	h := dev.Handles[port]
	if err := api.Do(ctx, "POST", "/api/handles/"+h+"/rtsp-url", map[string]any{"path": "/live", "ttl_seconds": 86400}, &dev, demo.Bearer(tok.Token)); err != nil {
		ag.stop()
		return fail(err)
	}
	url := dev.URL
	// Wait until the agent is online with the allowlist: a viewer plays.
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, err := startViewer(rtspAddr, url)
		if err == nil {
			v.c.Close()
			break
		}
		if time.Now().After(deadline) {
			ag.stop()
			return fail(fmt.Errorf("relay never played: %v", err))
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	return &target{name: "relay", gw: rl, extra: []*child{ag}, addr: rtspAddr, url: url, remove: func() {
		ag.stop()
		rl.stop()
		os.RemoveAll(dir)
	}}, nil
}

// spawnAgent starts the agent role; it prints no ready line, so it is
// given a moment and checked to be alive.
func spawnAgent(dir string) (*child, error) {
	self, _ := os.Executable()
	cmd := exec.Command(self, "agent", "-dir", dir)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &child{name: "agent", cmd: cmd}, nil
}

func measurePoint(tg *target, setup, mode string, fan bool, n, rate int, cam *child, warm, measure time.Duration) point {
	p := point{Setup: setup, Mode: mode, FanOut: fan, Viewers: n}
	viewers := make([]*viewer, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	var failed atomic.Int64
	var firstErr atomic.Value
	for i := range viewers {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			v, err := startViewer(tg.addr, tg.url)
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
				return
			}
			viewers[i] = v
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		fmt.Fprintf(os.Stderr, "%d viewers failed to start, first: %v\n", failed.Load(), err)
	}
	time.Sleep(warm)
	before := make([]int64, n)
	for i, v := range viewers {
		if v != nil {
			before[i] = v.bytes.Load()
		}
	}
	pids := map[string]int{"gw": tg.gw.cmd.Process.Pid, "cam": cam.cmd.Process.Pid, "self": os.Getpid()}
	for _, e := range tg.extra {
		pids["agent"] = e.cmd.Process.Pid
	}
	cpu0 := map[string]float64{}
	for k, pid := range pids {
		cpu0[k] = cpuSeconds(pid)
	}
	b0, t0 := machineBusy()
	start := time.Now()
	time.Sleep(measure)
	secs := time.Since(start).Seconds()
	b1, t1 := machineBusy()
	p.RSSMiB = rssMiB(pids["gw"])
	cores := func(k string) float64 {
		pid, ok := pids[k]
		if !ok {
			return 0
		}
		return (cpuSeconds(pid) - cpu0[k]) / secs
	}
	var total int64
	want := float64(rate) / 8 * secs * 0.95
	for i, v := range viewers {
		if v == nil {
			continue
		}
		p.Started++
		got := v.bytes.Load() - before[i]
		total += got
		if float64(got) >= want {
			p.OK++
		}
	}
	p.Mbps = float64(total) * 8 / secs / 1e6
	p.GwCores, p.AgentCores, p.CamCores, p.LoadCores = cores("gw"), cores("agent"), cores("cam"), cores("self")
	p.Busy = (b1 - b0) / (t1 - t0) * float64(runtime.NumCPU())
	p.Others = max(0, p.Busy-p.GwCores-p.AgentCores-p.CamCores-p.LoadCores)
	if p.Mbps > 0 {
		p.CPUPerGbps = p.GwCores / (p.Mbps / 1000)
	}
	for _, v := range viewers {
		if v != nil {
			v.c.Close()
		}
	}
	time.Sleep(time.Second) // let teardowns finish before the next point
	return p
}
