package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"
)

type tpRun struct {
	Path string
	tpResult
}

type idleSnap struct {
	RSS     map[string]int64
	Threads map[string]int64
	Mem     map[string]memStats // -pprof only
}

type idleResult struct {
	K                     int
	OpenDur, CloseDur     time.Duration
	Before, After, Closed idleSnap
}

// perConn is the growth of process who per idle tunnel, in bytes.
func (r idleResult) perConn(who string) float64 {
	return float64(r.After.RSS[who]-r.Before.RSS[who]) / float64(r.K)
}

func (r idleResult) heapPerConn(who string) (float64, bool) {
	b, ok1 := r.Before.Mem[who]
	a, ok2 := r.After.Mem[who]
	if !ok1 || !ok2 {
		return 0, false
	}
	return (float64(a.HeapInuse+a.StackInuse) - float64(b.HeapInuse+b.StackInuse)) / float64(r.K), true
}

type machine struct {
	NProc     string
	CPU       string
	Kernel    string
	GoVersion string
	Modules   []string
}

type report struct {
	cfg            *config
	started        time.Time
	elapsed        time.Duration
	machine        machine
	tp             []tpRun
	rtt, rttLoaded map[string]rttResult
	opens          map[string]openResult
	idle           idleResult
	diag           []string // -pprof: top functions per profile
	figs           []figure // filled by figures()
}

func newReport(c *config, started time.Time) *report {
	return &report{cfg: c, started: started, rtt: map[string]rttResult{}, rttLoaded: map[string]rttResult{}, opens: map[string]openResult{}}
}

// figure is one line of perf.jsonl and of the tables.
type figure struct {
	Name   string   `json:"name"`
	Value  float64  `json:"value"`
	Unit   string   `json:"unit"`
	Direct *float64 `json:"direct"`
	Ratio  *float64 `json:"ratio"`
	Path   string   `json:"path"`
	Target string   `json:"target,omitempty"`
	Met    *bool    `json:"met,omitempty"`

	label string
	dec   int // decimals shown
}

func ptr[T any](v T) *T { return &v }

const (
	pathTunnel = "tunnel: WebSocket/TLS to relay, smux/TLS to agent, TCP to echo"
	pathRelay  = "relay process"
	pathAgent  = "agent process"
)

func machineInfo(root string) machine {
	m := machine{NProc: fmt.Sprint(runtime.NumCPU()), GoVersion: runtime.Version()}
	if out, err := exec.Command("nproc").Output(); err == nil {
		m.NProc = strings.TrimSpace(string(out))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("go", "version").Output(); err == nil {
		m.GoVersion = strings.TrimSpace(strings.TrimPrefix(string(out), "go version "))
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			switch d.Path {
			case "github.com/xtaci/smux", "github.com/coder/websocket":
				m.Modules = append(m.Modules, d.Path+" "+d.Version)
			}
		}
	}
	if len(m.Modules) == 0 {
		// go.mod as the fallback
		b, _ := os.ReadFile(filepath.Join(root, "go.mod"))
		for _, l := range strings.Split(string(b), "\n") {
			l = strings.TrimSpace(l)
			if strings.HasPrefix(l, "github.com/xtaci/smux ") || strings.HasPrefix(l, "github.com/coder/websocket ") {
				m.Modules = append(m.Modules, l)
			}
		}
	}
	return m
}

// noise warns when other processes of the machine took a noticeable
// share of the CPU during the throughput and open runs.
func (r *report) noise() string {
	var other, wall float64
	for _, t := range r.tp {
		other += t.CPU["other"]
		wall += t.Dur.Seconds()
	}
	for _, o := range r.opens {
		other += o.CPU["other"]
		wall += o.Dur.Seconds()
	}
	if wall == 0 || other/wall < 0.1 {
		return ""
	}
	return fmt.Sprintf("other processes used %.2f cores on average during the measured runs (of %s); the MB/s and per-second figures are lower, and the CPU-seconds figures somewhat higher, than on an otherwise idle machine.", other/wall, r.machine.NProc)
}

// perMiB sums counter key over the runs of path with n connections, per
// MiB echoed.
func (r *report) perMiB(path string, n int, key string) string {
	var v float64
	var b int64
	for _, t := range r.tp {
		if t.Path == path && t.Conns == n {
			v += t.CPU[key]
			b += t.Bytes
		}
	}
	if b == 0 || v == 0 {
		return "—"
	}
	return num(v/(float64(b)/(1<<20)), 0)
}

// cpuPerGB sums CPU seconds of who over the runs of path, per GB echoed.
func (r *report) cpuPerGB(path, who string, n int) float64 {
	var cpu float64
	var bytes int64
	for _, t := range r.tp {
		if t.Path == path && (n == 0 || t.Conns == n) {
			cpu += t.CPU[who]
			bytes += t.Bytes
		}
	}
	if bytes == 0 {
		return math.NaN()
	}
	return cpu / (float64(bytes) / 1e9)
}

func (r *report) figures() []figure {
	var fs []figure
	add := func(f figure) {
		if f.Direct != nil && *f.Direct != 0 && f.Ratio == nil {
			f.Ratio = ptr(f.Value / *f.Direct)
		}
		fs = append(fs, f)
	}
	targets := map[int]float64{1: 0.20, 8: 0.30}
	for _, n := range r.cfg.concs {
		ours, _ := median(r.tp, "tunnel", n)
		dir, _ := median(r.tp, "direct", n)
		if ours.Dur == 0 || dir.Dur == 0 {
			continue
		}
		f := figure{Name: fmt.Sprintf("throughput_%d_tunnels", n), label: fmt.Sprintf("throughput, %d tunnel%s (echoed bytes, one direction)", n, plural(n)),
			Value: ours.MBps(), Unit: "MB/s", Direct: ptr(dir.MBps()), Path: pathTunnel, dec: 0}
		if t, ok := targets[n]; ok {
			f.Target = fmt.Sprintf("≥ %.0f%% of direct", t*100)
			f.Met = ptr(ours.MBps()/dir.MBps() >= t)
		}
		add(f)
	}
	if len(r.tp) > 0 {
		for _, who := range []string{"relay", "agent"} {
			add(figure{Name: who + "_cpu_per_gb", label: who + " CPU per GB echoed (direct: echo target)",
				Value: r.cpuPerGB("tunnel", who, 0), Unit: "CPU s/GB", Direct: ptr(r.cpuPerGB("direct", "echo", 0)), Path: map[string]string{"relay": pathRelay, "agent": pathAgent}[who], dec: 2})
		}
	}
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	if t, d := r.rtt["tunnel"], r.rtt["direct"]; len(t.Samples) > 0 && len(d.Samples) > 0 {
		add(figure{Name: "rtt64_p50", label: "64 B round trip p50", Value: us(t.pct(50)), Unit: "µs", Direct: ptr(us(d.pct(50))), Path: pathTunnel, dec: 0})
		over := us(t.pct(50) - d.pct(50))
		add(figure{Name: "rtt64_p50_overhead", label: "64 B round trip p50 overhead (tunnel − direct)", Value: over, Unit: "µs", Path: pathTunnel,
			Target: "≤ 120 µs", Met: ptr(over <= 120), dec: 0})
		add(figure{Name: "rtt64_p99", label: "64 B round trip p99", Value: us(t.pct(99)), Unit: "µs", Direct: ptr(us(d.pct(99))), Path: pathTunnel, dec: 0})
	}
	if t, d := r.rttLoaded["tunnel"], r.rttLoaded["direct"]; len(t.Samples) > 0 && len(d.Samples) > 0 {
		add(figure{Name: "rtt64_p50_beside_bulk", label: "64 B round trip p50 beside one bulk tunnel", Value: us(t.pct(50)), Unit: "µs", Direct: ptr(us(d.pct(50))), Path: pathTunnel, dec: 0})
		add(figure{Name: "rtt64_p99_beside_bulk", label: "64 B round trip p99 beside one bulk tunnel", Value: us(t.pct(99)), Unit: "µs", Direct: ptr(us(d.pct(99))), Path: pathTunnel, dec: 0})
	}
	if t, d := r.opens["tunnel"], r.opens["direct"]; t.Ops > 0 && d.Ops > 0 {
		add(figure{Name: "tunnels_opened_per_s", label: fmt.Sprintf("tunnels opened per second (%d openers; open, 1 B round trip, close)", r.cfg.openPar),
			Value: t.perSec(), Unit: "1/s", Direct: ptr(d.perSec()), Path: pathTunnel, Target: "≥ 2,000 /s", Met: ptr(t.perSec() >= 2000), dec: 0})
		add(figure{Name: "tunnel_open_p50", label: "open + 1 B round trip + close, p50", Value: us(t.Latency.pct(50)), Unit: "µs", Direct: ptr(us(d.Latency.pct(50))), Path: pathTunnel, dec: 0})
		add(figure{Name: "relay_cpu_per_open", label: "relay CPU per tunnel opened (direct: echo target per connection)", Value: t.CPU["relay"] / float64(t.Ops) * 1e6, Unit: "µs",
			Direct: ptr(d.CPU["echo"] / float64(d.Ops) * 1e6), Path: pathRelay, dec: 0})
	}
	if r.idle.K > 0 {
		kib := func(b float64) float64 { return b / 1024 }
		echo := kib(r.idle.perConn("echo"))
		v := kib(r.idle.perConn("relay"))
		add(figure{Name: "relay_rss_per_idle_tunnel", label: fmt.Sprintf("relay RSS per idle tunnel (K=%d; direct: echo target per connection)", r.idle.K),
			Value: v, Unit: "KiB", Direct: ptr(echo), Path: pathRelay, Target: "≤ 20 KiB", Met: ptr(v <= 20), dec: 1})
		add(figure{Name: "agent_rss_per_idle_tunnel", label: fmt.Sprintf("agent RSS per idle tunnel (K=%d; direct: echo target per connection)", r.idle.K),
			Value: kib(r.idle.perConn("agent")), Unit: "KiB", Direct: ptr(echo), Path: pathAgent, dec: 1})
		for _, who := range []string{"relay", "agent"} {
			if h, ok := r.idle.heapPerConn(who); ok {
				add(figure{Name: who + "_heap_per_idle_tunnel", label: fmt.Sprintf("%s Go heap+stacks per idle tunnel (after GC)", who),
					Value: kib(h), Unit: "KiB", Path: map[string]string{"relay": pathRelay, "agent": pathAgent}[who], dec: 1})
			}
		}
	}
	return fs
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func num(v float64, dec int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	s := fmt.Sprintf("%.*f", dec, v)
	// thousands separators for the integer part
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	ip, fp, _ := strings.Cut(s, ".")
	var b strings.Builder
	for i, ch := range ip {
		if i > 0 && (len(ip)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	out := b.String()
	if fp != "" {
		out += "." + fp
	}
	if neg {
		out = "−" + out
	}
	return out
}

func (f figure) cells() (ours, direct, ratio, target, status string) {
	ours = num(f.Value, f.dec) + " " + f.Unit
	direct, ratio = "—", "—"
	if f.Direct != nil {
		direct = num(*f.Direct, f.dec) + " " + f.Unit
	}
	if f.Ratio != nil {
		ratio = num(*f.Ratio, 3)
		if *f.Ratio >= 0.01 && *f.Ratio < 10 {
			ratio = fmt.Sprintf("%.2f×", *f.Ratio)
		} else {
			ratio = num(*f.Ratio, 1) + "×"
		}
	}
	target, status = f.Target, ""
	if f.Met != nil {
		status = "missed"
		if *f.Met {
			status = "met"
		}
	}
	return
}

// print writes the figures table to w.
func (r *report) print(w io.Writer) {
	if r.figs == nil {
		r.figs = r.figures()
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nfigure\tours\tdirect\tratio\ttarget\t")
	for _, f := range r.figs {
		o, d, ra, t, s := f.cells()
		if s != "" {
			t += " (" + s + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", f.label, o, d, ra, t)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%s, %s cores, %s; run took %v\n", r.machine.CPU, r.machine.NProc, r.machine.GoVersion, r.elapsed.Round(time.Second))
	if n := r.noise(); n != "" {
		fmt.Fprintln(w, "note:", n)
	}
}

// write puts perf.md, perf.svg and perf.jsonl into dir.
func (r *report) write(dir string) error {
	if r.figs == nil {
		r.figs = r.figures()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var jl bytes.Buffer
	for _, f := range r.figs {
		b, err := json.Marshal(f)
		if err != nil {
			return err
		}
		jl.Write(b)
		jl.WriteByte('\n')
	}
	if err := os.WriteFile(filepath.Join(dir, "perf.jsonl"), jl.Bytes(), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "perf.svg"), []byte(r.svg()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "perf.md"), []byte(r.markdown()), 0o644)
}

func (r *report) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	c := r.cfg
	mode := "full"
	if c.quick {
		mode = "quick (-quick)"
	}
	if c.pprofMode {
		mode += ", diagnostics (-pprof: relay and agent run as roles of the perf binary)"
	}
	if c.dedRate != 0 {
		mode += fmt.Sprintf(", agent DedicatedRate %d", c.dedRate)
	}
	if c.plainHTTP {
		mode += ", **-plain-http** (relay API without TLS: a diagnostic, not the product)"
	}
	if len(c.serverEnv) > 0 {
		mode += ", relay and agent with " + strings.Join(c.serverEnv, " ")
	}
	p("# Performance\n\n")
	p("End-to-end figures of the tunnel path, each beside direct loopback TCP to the same echo target in the same run. ")
	p("Generated by `go run ./perf` (package `perf/`); do not edit by hand, rerun it.\n\n")
	p("How to run: `go run ./perf` (full, a few minutes on 2 cores) or `go run ./perf -quick` (about a minute); ")
	p("`go run ./perf -pprof` adds Go heap per idle tunnel and CPU profiles of relay and agent. Never part of `go test`.\n\n")
	p("| | |\n|---|---|\n")
	p("| date | %s |\n", r.started.UTC().Format("2006-01-02 15:04 MST"))
	p("| run | %s, %v |\n", mode, r.elapsed.Round(time.Second))
	p("| machine | `nproc` = %s, %s, Linux %s |\n", r.machine.NProc, r.machine.CPU, r.machine.Kernel)
	p("| Go | %s |\n", r.machine.GoVersion)
	p("| modules | %s |\n\n", strings.Join(r.machine.Modules, ", "))

	if w := r.noise(); w != "" {
		p("> **Note:** %s\n\n", w)
	}
	p("![throughput and round trip](perf.svg)\n\n")
	p("## Figures\n\n")
	p("| figure | ours | direct | ratio | target | status |\n|---|---:|---:|---:|---|---|\n")
	for _, f := range r.figs {
		o, d, ra, t, s := f.cells()
		if s == "missed" {
			s = "**missed**"
		}
		p("| %s | %s | %s | %s | %s | %s |\n", f.label, o, d, ra, t, s)
	}
	p("\nRatio is ours ÷ direct. Targets are those of the product issues. ")
	p("\"Direct\" for the CPU and memory figures is the echo target, a plain Go TCP server (one goroutine and a pooled 64 KiB copy buffer per connection): ")
	p("the cost of the simplest process that touches every byte or holds every connection.\n\n")

	p("## Method\n\n")
	p("- `go build` makes `nanodems-relay`, `nanodems-agent` and `nanodems-tunnel` in a temporary directory. ")
	p("The relay runs as `nanodems-relay serve` with its own data directory and TLS API on 127.0.0.1; the harness provisions a tenant, user, `nt_` token, site, device (the echo port → handle) and enrollment token through the HTTP API, ")
	p("runs `nanodems-agent enroll` and `nanodems-agent run`, and waits until the agent is online with the site's allowlist version. ")
	p("The echo target (`demo.StartEcho`) runs in a third process (this binary, `-serve-echo`); the harness is a fourth. All four share the machine's cores.\n")
	p("- Tunnel = `cli.DialTunnel` (WebSocket over TLS to `GET /api/tunnel/{handle}`, a new TLS connection per tunnel) → relay → smux v2 stream over the agent's TLS 1.3 session → agent → TCP to the echo target. Direct = `net.Dial` to the echo target.\n")
	p("- Throughput: %d MiB per run, split over its connections; each connection has a writer goroutine (%d KiB Writes, then CloseWrite) and a reader goroutine (SHA-256 of what comes back, compared with the SHA-256 of what was sent). ", c.totalMiB, c.chunk>>10)
	p("MB/s = bytes echoed (one direction: each byte also went the other way) ÷ wall time from the first write to the last byte read; 1 MB = 10⁶ bytes. Median of %d run(s).\n", c.repeats)
	p("- The agent moves a tunnel that carries more than its `DedicatedRate` (default 8 MiB/s) to a dedicated TLS connection of its own (BEP); the bulk runs measure that, as a product would behave. The details count the moves per run (agent log).\n")
	p("- CPU: utime+stime from `/proc/PID/stat` around the timed part of every throughput run, summed over all runs of a path, per GB (10⁹ bytes) echoed.\n")
	p("- Round trip: %d ping-pongs of 64 bytes on one connection after 200 warm-up ones; \"beside bulk\": %d ping-pongs while a second connection to the same target pushes data both ways as fast as it can (on a tunnel both share the agent's session).\n", c.rttSamples, c.rttSamples/2)
	p("- Opens: %d openers for %v, each: open, write 1 byte, read it back, close.\n", c.openPar, c.openDur)
	p("- Idle memory: VmRSS from `/proc/PID/status` before and 2 s after opening K=%d tunnels (each with a 1-byte round trip, then idle), divided by K; measured first, before the bulk runs grow the heaps. ", r.idle.K)
	p("RSS counts touched pages only: a fresh 64 KiB buffer of which one page was written adds 4 KiB. `-pprof` adds the Go heap and stacks after a forced GC, which count whole objects.\n")
	p("- Diagnostics: `-perfstat` counts system calls and context switches of each process with Linux `perf stat`; `-pprof` runs relay and agent as roles of the perf binary (same `relay.New`/`agent.New` code, plus a loopback debug listener) and writes CPU, heap and goroutine profiles to `$TMPDIR/nanodems-perf-pprof/`; `-only throughput,rtt` runs some phases (without writing the report); `-server-env GOMAXPROCS=1` sets the environment of relay and agent.\n\n")

	p("## Details\n\n### Throughput runs\n\n")
	p("CPU seconds per GB echoed, per process; \"other\" is every other process of the machine during the runs (a busy neighbour on a 2-core machine lowers every MB/s figure). ")
	p("With -perfstat: system calls per MiB echoed.\n\n")
	p("| path | conns | MiB each | MB/s (runs) | median | relay CPU s/GB | agent | echo | harness | other | moved to dedicated |%s\n|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|%s\n",
		map[bool]string{true: " syscalls/MiB relay, agent, harness |"}[r.cfg.perfstat], map[bool]string{true: "---|"}[r.cfg.perfstat])
	for _, n := range c.concs {
		for _, path := range []string{"tunnel", "direct"} {
			med, all := median(r.tp, path, n)
			if len(all) == 0 {
				continue
			}
			var runs []string
			for _, t := range r.tp {
				if t.Path == path && t.Conns == n {
					runs = append(runs, num(t.MBps(), 0))
				}
			}
			cell := func(who string) string {
				if path == "direct" && (who == "relay" || who == "agent") {
					return "—"
				}
				return num(r.cpuPerGB(path, who, n), 2)
			}
			sc := ""
			if r.cfg.perfstat {
				sc = " " + r.perMiB(path, n, "relay syscalls") + ", " + r.perMiB(path, n, "agent syscalls") + ", " + r.perMiB(path, n, "harness syscalls") + " |"
			}
			moved := "—"
			if path == "tunnel" {
				var m []string
				for _, t := range all {
					m = append(m, fmt.Sprint(t.Moved))
				}
				moved = strings.Join(m, ", ")
			}
			p("| %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s |%s\n", path, n, med.PerConn>>20, strings.Join(runs, ", "), num(med.MBps(), 0),
				cell("relay"), cell("agent"), cell("echo"), cell("harness"), cell("other"), moved, sc)
		}
	}
	p("\n### Round trips (µs)\n\n| path | p50 | p90 | p99 | p99.9 | max | mean |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, x := range []struct {
		name string
		m    map[string]rttResult
	}{{"", r.rtt}, {" beside bulk", r.rttLoaded}} {
		for _, path := range []string{"tunnel", "direct"} {
			t, ok := x.m[path]
			if !ok {
				continue
			}
			us := func(d time.Duration) string { return num(float64(d)/1e3, 0) }
			p("| %s%s | %s | %s | %s | %s | %s | %s |\n", path, x.name, us(t.pct(50)), us(t.pct(90)), us(t.pct(99)), us(t.pct(99.9)), us(t.pct(100)), us(t.mean()))
		}
	}
	p("\n### Opens\n\n| path | opens | seconds | per second | latency p50 | p99 | CPU µs per open: relay | agent | echo | harness | other |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, path := range []string{"tunnel", "direct"} {
		o, ok := r.opens[path]
		if !ok {
			continue
		}
		per := func(who string) string { return num(o.CPU[who]/float64(o.Ops)*1e6, 0) }
		p("| %s | %d | %.2f | %s | %s µs | %s µs | %s | %s | %s | %s | %s |\n", path, o.Ops, o.Dur.Seconds(), num(o.perSec(), 0), num(float64(o.Latency.pct(50))/1e3, 0), num(float64(o.Latency.pct(99))/1e3, 0),
			per("relay"), per("agent"), per("echo"), per("harness"), per("other"))
	}
	if r.idle.K > 0 {
		mib := func(v int64) string { return num(float64(v)/(1<<20), 1) }
		p("\n### Idle tunnels (K=%d, opened in %v, closed in %v)\n\n", r.idle.K, r.idle.OpenDur.Round(time.Millisecond), r.idle.CloseDur.Round(time.Millisecond))
		p("| process | RSS before | with K open | after closing | per tunnel | threads with K open |\n|---|---:|---:|---:|---:|---:|\n")
		for _, who := range []string{"relay", "agent", "echo"} {
			p("| %s | %s MiB | %s MiB | %s MiB | %s KiB | %d |\n", who, mib(r.idle.Before.RSS[who]), mib(r.idle.After.RSS[who]), mib(r.idle.Closed.RSS[who]),
				num(r.idle.perConn(who)/1024, 1), r.idle.After.Threads[who])
		}
		if len(r.idle.After.Mem) > 0 {
			p("\nGo runtime (after a forced GC, -pprof):\n\n| process | heap in use before → with K | stacks before → with K | goroutines before → with K | goroutines per tunnel |\n|---|---:|---:|---:|---:|\n")
			for _, who := range []string{"relay", "agent"} {
				bm, am := r.idle.Before.Mem[who], r.idle.After.Mem[who]
				p("| %s | %s → %s MiB | %s → %s MiB | %d → %d | %.1f |\n", who,
					num(float64(bm.HeapInuse)/(1<<20), 1), num(float64(am.HeapInuse)/(1<<20), 1),
					num(float64(bm.StackInuse)/(1<<20), 1), num(float64(am.StackInuse)/(1<<20), 1),
					bm.Goroutines, am.Goroutines, float64(am.Goroutines-bm.Goroutines)/float64(r.idle.K))
			}
		}
	}
	if len(r.diag) > 0 {
		p("\n## CPU profiles (-pprof)\n\n")
		for _, d := range r.diag {
			p("%s\n", d)
		}
	}
	return b.String()
}

// svg draws two bar charts by hand: throughput per path and RTT p50/p99.
func (r *report) svg() string {
	type bar struct {
		group string
		ours  float64
		dir   float64
	}
	var tp, rt, rl []bar
	for _, n := range r.cfg.concs {
		o, _ := median(r.tp, "tunnel", n)
		d, _ := median(r.tp, "direct", n)
		if o.Dur > 0 && d.Dur > 0 {
			tp = append(tp, bar{fmt.Sprintf("%d tunnel%s", n, plural(n)), o.MBps(), d.MBps()})
		}
	}
	us := func(x time.Duration) float64 { return float64(x) / 1e3 }
	if t, d := r.rtt["tunnel"], r.rtt["direct"]; len(t.Samples) > 0 && len(d.Samples) > 0 {
		rt = append(rt, bar{"p50", us(t.pct(50)), us(d.pct(50))}, bar{"p99", us(t.pct(99)), us(d.pct(99))})
	}
	if t, d := r.rttLoaded["tunnel"], r.rttLoaded["direct"]; len(t.Samples) > 0 && len(d.Samples) > 0 {
		rl = append(rl, bar{"p50", us(t.pct(50)), us(d.pct(50))}, bar{"p99", us(t.pct(99)), us(d.pct(99))})
	}
	const (
		W, H      = 960, 370
		top, base = 70, 300 // bar area from y=top to y=base
		barW      = 30
	)
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%d" y="20" font-size="15" font-weight="bold">nanodems tunnel vs direct loopback TCP, %s (%s cores)</text>`+"\n", 20, r.started.UTC().Format("2006-01-02"), r.machine.NProc)
	p(`<rect x="%d" y="30" width="12" height="12" fill="#2f6db5"/><text x="%d" y="41">tunnel</text>`, 20, 36)
	p(`<rect x="%d" y="30" width="12" height="12" fill="#a8a8a8"/><text x="%d" y="41">direct</text>`+"\n", 90, 106)
	panel := func(x0, panelW int, title, unit string, bars []bar) {
		p(`<text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", x0, top-8, xmlEsc(title))
		max := 0.0
		for _, br := range bars {
			max = math.Max(max, math.Max(br.ours, br.dir))
		}
		if max == 0 || len(bars) == 0 {
			return
		}
		max *= 1.12
		p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`+"\n", x0, base, x0+panelW, base)
		gw := panelW / len(bars)
		for i, br := range bars {
			gx := x0 + i*gw + (gw-2*barW-4)/2
			for j, v := range []float64{br.ours, br.dir} {
				h := v / max * float64(base-top)
				x := gx + j*(barW+4)
				col := "#2f6db5"
				if j == 1 {
					col = "#a8a8a8"
				}
				p(`<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="%s"/>`, x, float64(base)-h, barW, h, col)
				p(`<text x="%d" y="%.1f" text-anchor="middle" font-size="10">%s</text>`+"\n", x+barW/2, float64(base)-h-3, num(v, 0))
			}
			p(`<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", x0+i*gw+gw/2, base+16, xmlEsc(br.group))
			if br.dir > 0 {
				p(`<text x="%d" y="%d" text-anchor="middle" font-size="10" fill="#555">%.2f×</text>`+"\n", x0+i*gw+gw/2, base+30, br.ours/br.dir)
			}
		}
		p(`<text x="%d" y="%d" font-size="10" fill="#555">%s; ratio = tunnel ÷ direct</text>`+"\n", x0, base+50, xmlEsc(unit))
	}
	panel(20, 380, "Throughput (higher is better)", "MB/s of echoed bytes, one direction", tp)
	panel(440, 220, "64 B round trip (lower is better)", "µs", rt)
	panel(700, 240, "64 B round trip beside a bulk tunnel", "µs", rl)
	p("</svg>\n")
	return b.String()
}

func xmlEsc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
