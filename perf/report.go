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
	"strconv"
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
	// Idle is how an idle CPU waits (cpuIdle), "" where unknown.
	Idle string
	// Load is /proc/loadavg's 1, 5 and 15 minute figures when the
	// report is made: on a shared machine, how much else ran.
	Load []float64
}

type report struct {
	cfg            *config
	started        time.Time
	elapsed        time.Duration
	machine        machine
	tp             []tpRun
	rtt, rttLoaded map[string]rttResult  // by path
	floor          rttResult             // through two plain TCP forwarder processes
	hol            map[string]holResult  // "ws shared", "ws dedicated", "cli …", "direct"
	opens          map[string]openResult // by path
	idle           map[string]idleResult // by tunnel path
	diag           []string              // -pprof: top functions per profile
	figs           []figure              // filled by figures()
}

// holResult is a round-trip run beside a paced heavy stream.
type holResult struct {
	rttResult
	Rate  float64 // bytes/s the heavy stream achieved (read back)
	Moved int     // tunnels the agent moved to dedicated connections meanwhile
}

func newReport(c *config, started time.Time) *report {
	return &report{cfg: c, started: started, rtt: map[string]rttResult{}, rttLoaded: map[string]rttResult{}, hol: map[string]holResult{},
		opens: map[string]openResult{}, idle: map[string]idleResult{}}
}

// figure is one line of perf.jsonl and of the tables.
type figure struct {
	Name   string   `json:"name"`
	Via    string   `json:"via"` // "ws" (WebSocket per tunnel), "cli" (CLI mux session) or "floor" (two plain forwarders)
	Value  float64  `json:"value"`
	Unit   string   `json:"unit"`
	Direct *float64 `json:"direct"`
	Ratio  *float64 `json:"ratio"`
	Path   string   `json:"path"`
	Target string   `json:"target,omitempty"`
	Met    *bool    `json:"met,omitempty"`

	label   string
	dec     int  // decimals shown
	noRatio bool // ours ÷ direct means nothing (a ratio of ratios)
}

func ptr[T any](v T) *T { return &v }

// describe is the Path of a figure: what the bytes cross.
var describe = map[string]string{
	pathWS:  "WebSocket/TLS per tunnel to relay, smux/TLS to agent, TCP to echo",
	pathCLI: "TCP to nanodems-tunnel, smux stream in one WebSocket/TLS to relay, smux/TLS to agent, TCP to echo",
}

// describeFloor is the Path of the floor figures.
const describeFloor = "TCP through two io.Copy forwarder processes (perf -serve-forward) to echo"

// pathName is how the report names a path.
var pathName = map[string]string{pathWS: "WebSocket per tunnel", pathCLI: "CLI mux", pathDirect: "direct"}

const (
	pathRelay = "relay process"
	pathAgent = "agent process"
	pathTool  = "nanodems-tunnel process"
)

func machineInfo(root string) machine {
	m := machine{NProc: fmt.Sprint(runtime.NumCPU()), GoVersion: runtime.Version(), Idle: cpuIdle()}
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
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		for _, f := range strings.Fields(string(b))[:3] {
			if v, err := strconv.ParseFloat(f, 64); err == nil {
				m.Load = append(m.Load, v)
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
		if math.IsNaN(f.Value) || math.IsInf(f.Value, 0) {
			return
		}
		if f.Direct != nil && *f.Direct != 0 && f.Ratio == nil && !f.noRatio {
			f.Ratio = ptr(f.Value / *f.Direct)
		}
		fs = append(fs, f)
	}
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	kib := func(b float64) float64 { return b / 1024 }
	targets := map[int]float64{1: 0.20, 8: 0.30}
	for _, n := range r.cfg.concs {
		dir, _ := median(r.tp, pathDirect, n)
		for _, via := range tunnelPaths {
			ours, _ := median(r.tp, via, n)
			if ours.Dur == 0 || dir.Dur == 0 {
				continue
			}
			f := figure{Name: fmt.Sprintf("throughput_%d_tunnels", n), Via: via, label: fmt.Sprintf("throughput, %d tunnel%s (echoed bytes, one direction)", n, plural(n)),
				Value: ours.MBps(), Unit: "MB/s", Direct: ptr(dir.MBps()), Path: describe[via], dec: 0}
			if t, ok := targets[n]; ok {
				f.Target = fmt.Sprintf("≥ %.0f%% of direct", t*100)
				f.Met = ptr(ours.MBps()/dir.MBps() >= t)
			}
			add(f)
		}
		if fl, _ := median(r.tp, pathFloor, n); fl.Dur > 0 && dir.Dur > 0 {
			add(figure{Name: fmt.Sprintf("throughput_%d_floor", n), Via: pathWS, label: fmt.Sprintf("throughput, %d connection%s through two plain TCP forwarder processes (the floor: process hops alone, no TLS, no mux)", n, plural(n)),
				Value: fl.MBps(), Unit: "MB/s", Direct: ptr(dir.MBps()), Path: describeFloor, dec: 0})
		}
	}
	if len(r.tp) > 0 {
		for _, who := range []string{"relay", "agent", "cli"} {
			for _, via := range tunnelPaths {
				if who == "cli" && via != pathCLI {
					continue
				}
				label := who + " CPU per GB echoed (direct: echo target)"
				if who == "cli" {
					label = "nanodems-tunnel CPU per GB echoed (direct: echo target)"
				}
				add(figure{Name: who + "_cpu_per_gb", Via: via, label: label,
					Value: r.cpuPerGB(via, who, 0), Unit: "CPU s/GB", Direct: ptr(r.cpuPerGB(pathDirect, "echo", 0)), Path: map[string]string{"relay": pathRelay, "agent": pathAgent, "cli": pathTool}[who], dec: 2})
			}
		}
	}
	d := r.rtt[pathDirect]
	for _, via := range tunnelPaths {
		if t := r.rtt[via]; len(t.Samples) > 0 && len(d.Samples) > 0 {
			add(figure{Name: "rtt64_p50", Via: via, label: "64 B round trip p50", Value: us(t.pct(50)), Unit: "µs", Direct: ptr(us(d.pct(50))), Path: describe[via], dec: 0})
		}
	}
	for _, via := range tunnelPaths {
		if t := r.rtt[via]; len(t.Samples) > 0 && len(d.Samples) > 0 {
			over := us(t.pct(50) - d.pct(50))
			add(figure{Name: "rtt64_p50_overhead", Via: via, label: "64 B round trip p50 overhead (tunnel − direct)", Value: over, Unit: "µs", Path: describe[via],
				Target: "≤ 120 µs", Met: ptr(over <= 120), dec: 0})
		}
	}
	if f := r.floor; len(f.Samples) > 0 && len(d.Samples) > 0 {
		// Shown in the WebSocket column: that path crosses the same two
		// processes (relay, agent) between harness and echo target.
		add(figure{Name: "rtt64_p50_overhead_floor", Via: pathWS, label: "64 B round trip p50 overhead of two plain TCP forwarder processes in the same place (the floor: process hops alone, no TLS, no mux)",
			Value: us(f.pct(50) - d.pct(50)), Unit: "µs", Path: describeFloor, dec: 0})
	}
	for _, via := range tunnelPaths {
		if t := r.rtt[via]; len(t.Samples) > 0 && len(d.Samples) > 0 {
			add(figure{Name: "rtt64_p99", Via: via, label: "64 B round trip p99", Value: us(t.pct(99)), Unit: "µs", Direct: ptr(us(d.pct(99))), Path: describe[via], dec: 0})
		}
	}
	// Head-of-line: beside a paced heavy stream, p99 against the idle p99.
	dh := r.hol[pathDirect]
	for _, mode := range []string{"shared", "dedicated"} {
		for _, via := range tunnelPaths {
			h, ok := r.hol[via+" "+mode]
			if !ok || len(h.Samples) == 0 {
				continue
			}
			f := figure{Name: "rtt64_p99_beside_paced_" + mode, Via: via,
				label: fmt.Sprintf("64 B round trip p99 beside a %.0f MB/s tunnel, %s", pacedRate/1e6, map[string]string{"shared": "shared session only (agent --dedicated-rate -1)", "dedicated": "dedicated connections on (default)"}[mode]),
				Value: us(h.pct(99)), Unit: "µs", Path: describe[via], dec: 0}
			if len(dh.Samples) > 0 {
				f.Direct = ptr(us(dh.pct(99)))
			}
			add(f)
		}
	}
	for _, mode := range []string{"shared", "dedicated"} {
		for _, via := range tunnelPaths {
			h, ok := r.hol[via+" "+mode]
			idle := r.hol[via+" "+mode+" idle"]
			if !ok || len(h.Samples) == 0 || len(idle.Samples) == 0 {
				continue
			}
			f := figure{Name: "hol_p99_ratio_" + mode, Via: via,
				label: fmt.Sprintf("p99 beside the %.0f MB/s tunnel ÷ idle p99 just before, %s", pacedRate/1e6, map[string]string{"shared": "shared session only", "dedicated": "dedicated connections on"}[mode]),
				Value: float64(h.pct(99)) / float64(idle.pct(99)), Unit: "×", Path: describe[via], dec: 2}
			if di := r.hol[pathDirect+" idle"]; len(dh.Samples) > 0 && len(di.Samples) > 0 {
				f.Direct = ptr(float64(dh.pct(99)) / float64(di.pct(99)))
				f.noRatio = true
			}
			if mode == "dedicated" {
				f.Target, f.Met = "≤ 2×", ptr(f.Value <= 2)
			}
			add(f)
		}
	}
	dl := r.rttLoaded[pathDirect]
	for _, pc := range []float64{50, 99} {
		for _, via := range tunnelPaths {
			if t := r.rttLoaded[via]; len(t.Samples) > 0 && len(dl.Samples) > 0 {
				add(figure{Name: fmt.Sprintf("rtt64_p%.0f_beside_saturating_bulk", pc), Via: via,
					label: fmt.Sprintf("64 B round trip p%.0f beside an unpaced bulk tunnel (saturates both cores: CPU contention, not head-of-line)", pc),
					Value: us(t.pct(pc)), Unit: "µs", Direct: ptr(us(dl.pct(pc))), Path: describe[via], dec: 0})
			}
		}
	}
	do := r.opens[pathDirect]
	for _, via := range tunnelPaths {
		if t := r.opens[via]; t.Ops > 0 && do.Ops > 0 {
			add(figure{Name: "tunnels_opened_per_s", Via: via, label: fmt.Sprintf("tunnels opened per second (%d openers; open, 1 B round trip, close)", r.cfg.openPar),
				Value: t.perSec(), Unit: "1/s", Direct: ptr(do.perSec()), Path: describe[via], Target: "≥ 2,000 /s", Met: ptr(t.perSec() >= 2000), dec: 0})
		}
	}
	for _, via := range tunnelPaths {
		if t := r.opens[via]; t.Ops > 0 && do.Ops > 0 {
			add(figure{Name: "tunnel_open_p50", Via: via, label: "open + 1 B round trip + close, p50", Value: us(t.Latency.pct(50)), Unit: "µs", Direct: ptr(us(do.Latency.pct(50))), Path: describe[via], dec: 0})
		}
	}
	for _, who := range []string{"relay", "agent", "cli"} {
		for _, via := range tunnelPaths {
			t := r.opens[via]
			if t.Ops == 0 || do.Ops == 0 || (who == "cli" && via != pathCLI) {
				continue
			}
			name := map[string]string{"relay": "relay", "agent": "agent", "cli": "nanodems-tunnel"}[who]
			add(figure{Name: who + "_cpu_per_open", Via: via, label: name + " CPU per tunnel opened (direct: echo target per connection)", Value: t.CPU[who] / float64(t.Ops) * 1e6, Unit: "µs",
				Direct: ptr(do.CPU["echo"] / float64(do.Ops) * 1e6), Path: map[string]string{"relay": pathRelay, "agent": pathAgent, "cli": pathTool}[who], dec: 0})
		}
	}
	for _, who := range []string{"relay", "agent", "cli"} {
		for _, via := range tunnelPaths {
			id, ok := r.idle[via]
			if !ok || id.K == 0 || (who == "cli" && via != pathCLI) {
				continue
			}
			name := map[string]string{"relay": "relay", "agent": "agent", "cli": "nanodems-tunnel"}[who]
			f := figure{Name: who + "_rss_per_idle_tunnel", Via: via, label: fmt.Sprintf("%s RSS per idle tunnel (K=%d; direct: echo target per connection)", name, id.K),
				Value: kib(id.perConn(who)), Unit: "KiB", Direct: ptr(kib(r.echoPerConn())), Path: map[string]string{"relay": pathRelay, "agent": pathAgent, "cli": pathTool}[who], dec: 1}
			if who == "relay" {
				f.Target, f.Met = "≤ 20 KiB", ptr(f.Value <= 20)
			}
			add(f)
		}
	}
	for _, who := range []string{"relay", "agent"} {
		for _, via := range tunnelPaths {
			if h, ok := r.idle[via].heapPerConn(who); ok {
				add(figure{Name: who + "_heap_per_idle_tunnel", Via: via, label: fmt.Sprintf("%s Go heap+stacks per idle tunnel (after GC)", who),
					Value: kib(h), Unit: "KiB", Path: map[string]string{"relay": pathRelay, "agent": pathAgent}[who], dec: 1})
			}
		}
	}
	return fs
}

// missedNotes says, for each target a path misses, why and what would
// reach it. The reasons are those of the profiles and counters in
// docs/perf-bench.md; the figures are this run's.
func (r *report) missedNotes(p func(string, ...any)) {
	missed := map[string][]string{} // figure name → paths that miss
	for _, f := range r.figs {
		if f.Met != nil && !*f.Met {
			missed[f.Name] = append(missed[f.Name], pathName[f.Via])
		}
	}
	if len(missed) == 0 {
		return
	}
	p("## Missed targets: why, and what would reach them\n\n")
	who := func(name string) string { return strings.Join(missed[name], " and ") }
	perGB := func(path string) float64 {
		t := r.cpuPerGB(path, "relay", 0) + r.cpuPerGB(path, "agent", 0)
		if path == pathCLI {
			t += r.cpuPerGB(path, "cli", 0)
		}
		return t
	}
	floorTP := func(n int) string {
		fl, _ := median(r.tp, pathFloor, n)
		dir, _ := median(r.tp, pathDirect, n)
		if fl.Dur == 0 || dir.Dur == 0 {
			return "not measured"
		}
		return fmt.Sprintf("%s MB/s (%s× of direct)", num(fl.MBps(), 0), num(fl.MBps()/dir.MBps(), 2))
	}
	if len(missed["throughput_1_tunnels"])+len(missed["throughput_8_tunnels"]) > 0 {
		p("- **Throughput** (%s): CPU-bound on 2 cores shared by five processes. Every echoed byte crosses the operator's TLS leg and the agent's TLS leg both ways (eight AES-GCM operations per echoed byte, about 0.19 CPU s per GB each on this CPU: 1.5 CPU s per GB echoed before any other work) and twelve (WebSocket) or sixteen (CLI mux) loopback socket ends, against four for direct; ",
			who(map[bool]string{true: "throughput_8_tunnels", false: "throughput_1_tunnels"}[len(missed["throughput_8_tunnels"]) > 0]))
		p("relay + agent (+ nanodems-tunnel) spend %s (WebSocket) and %s (CLI mux) CPU s per GB echoed, against %s for the echo target. ",
			num(perGB(pathWS), 1), num(perGB(pathCLI), 1), num(r.cpuPerGB(pathDirect, "echo", 0), 2))
		p("Two plain TCP forwarder processes in the relay's and agent's place, with no TLS and no mux, move %s with 8 connections in this run: crossing two more processes costs half of direct's throughput on these 2 cores before any TLS or framing. ", floorTP(8))
		p("Relay and agent write each TLS Write in one system call (`internal/coalesce`) and smux writes waiting frames together (`third_party/smux`), so what is left is mostly the crypto and the copies. ")
		p("What would reach 30%%: cores of their own. In a deployment the operator's tool, the relay, the agent and the camera are four machines; here all five processes share two cores, so every CPU second the relay or agent spends is taken from the client and the target.\n")
	}
	if len(missed["rtt64_p50_overhead"]) > 0 {
		fl := "not measured"
		if d := r.rtt[pathDirect]; len(r.floor.Samples) > 0 && len(d.Samples) > 0 {
			fl = num(float64(r.floor.pct(50)-d.pct(50))/1e3, 0) + " µs"
		}
		p("- **Round-trip overhead** (%s): two plain TCP forwarder processes in the relay's and agent's place, io.Copy and nothing else, add %s to the 64-byte round trip at p50 in this run: on this 2-vCPU virtual machine every process hop is a cross-CPU wake-up, which costs far more than on bare metal (pinned to one CPU with taskset, the same two forwarders added 85 µs in a separate check). ", who("rtt64_p50_overhead"), fl)
		p("The 120 µs target is at or below that floor, before any TLS or multiplexing. Within relay and agent, smux's three goroutine hand-offs per write are gone (third_party/smux writes on the caller's goroutine when nothing waits), which took the scheduling delay of an in-process round trip from 73 µs to 31 µs. ")
		p("What would reach 120 µs: a machine where a wake-up is cheap (bare metal, or vCPUs that do not halt), and for the CLI path `cli.Tunnel.DialPlan` or `nanodems-tunnel exec`, which skip the extra local hop.\n")
	}
	if len(missed["tunnels_opened_per_s"]) > 0 {
		var parts []string
		for _, via := range tunnelPaths {
			o := r.opens[via]
			if o.Ops == 0 {
				continue
			}
			sum := 0.0
			for _, w := range []string{"relay", "agent", "cli", "echo", "harness"} {
				sum += o.CPU[w]
			}
			parts = append(parts, fmt.Sprintf("%s %s µs (relay %s)", pathName[via], num(sum/float64(o.Ops)*1e6, 0), num(o.CPU["relay"]/float64(o.Ops)*1e6, 0)))
		}
		p("- **Opens per second** (%s): CPU per open, summed over all processes: %s; 2 cores cap that at 2 s ÷ the sum, and the openers are never all busy at once. ", who("tunnels_opened_per_s"), strings.Join(parts, ", "))
		p("A WebSocket tunnel pays a (resumed) TLS 1.3 handshake with an X25519MLKEM768 key exchange and an HTTP upgrade per open, while 2,000 opens a second on 2 cores leave 1,000 µs of CPU per open for all processes together. ")
		p("A CLI mux open is now a stream whose SYN and header leave in one write, whose first window update rides on its first answer, with the CLI session checked from memory; what is left is about sixteen frame writes through three processes (header, status, data, in-band EOF and FIN, each way), the agent's TCP connect to the device and the target's accept. ")
		p("What would reach 2,000/s: fewer frames per open (EOF and FIN together; the status with the first data) and a third core.\n")
	}
	if len(missed["relay_rss_per_idle_tunnel"]) > 0 {
		p("- **Relay memory per idle tunnel** (%s): a WebSocket tunnel is a TLS connection of its own. `-pprof` (K=3000, after a forced GC) counts 33 KiB of Go heap and stacks per WebSocket tunnel: crypto/tls keeps the record buffer its ClientHello grew (4.6 KiB with the X25519MLKEM768 key share) and the AES-GCM state of both directions (2.3 KiB); the WebSocket, its 512-byte buffers (net/http's two 4 KiB ones were 8 KiB of it before, relay/hijack.go) and a smux stream to the agent; and two goroutines blocked in reads, 12 KiB of stacks. RSS adds the garbage collector's headroom. ", who("relay_rss_per_idle_tunnel"))
		p("What would reach 20 KiB for WebSocket tunnels: one goroutine instead of two per idle tunnel (a read-readiness callback from the WebSocket and from smux), or sharing a connection among tunnels, which is what the CLI mux does.\n")
	}
	if len(missed["hol_p99_ratio_dedicated"]) > 0 {
		p("- **Round trip beside a heavy tunnel** (%s): the agent moves the heavy tunnel to a dedicated connection, but the operator's leg stays shared: one TLS connection (CLI mux) or the same process and cores (both paths). ", who("hol_p99_ratio_dedicated"))
		p("Direct TCP's own p99 grows by the factor shown in its column beside the same heavy stream, so most of what remains is CPU contention on 2 cores. What would reach 2×: a dedicated WebSocket from the CLI for heavy streams, and cores to spare.\n")
	}
	p("\n")
}

// echoPerConn is the echo target's RSS per idle connection: from the
// first idle run, the one where the echo target's heap was fresh (it is
// not restarted between paths).
func (r *report) echoPerConn() float64 {
	v := 0.0
	for _, id := range r.idle {
		v = max(v, id.perConn("echo"))
	}
	return v
}

// row is the figures of one name, one per tunnel path.
type row struct {
	label  string
	direct string
	by     map[string]figure
	target string
}

// rows groups the figures by name, in order.
func rows(figs []figure) []row {
	var out []row
	idx := map[string]int{}
	for _, f := range figs {
		i, ok := idx[f.Name]
		if !ok {
			i = len(out)
			idx[f.Name] = i
			out = append(out, row{label: f.label, direct: "—", by: map[string]figure{}})
		}
		_, d, _, t, _ := f.cells()
		if d != "—" {
			out[i].direct = d
		}
		if t != "" {
			out[i].target = t
		}
		out[i].by[f.Via] = f
	}
	return out
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
	direct = "—"
	if f.Direct != nil {
		direct = num(*f.Direct, f.dec) + " " + f.Unit
	}
	ratio = "—"
	if f.Ratio != nil {
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
	fmt.Fprintln(tw, "\nfigure\tWebSocket\tCLI mux\tdirect\ttarget\t")
	for _, rw := range rows(r.figs) {
		var cells []string
		for _, via := range []string{pathWS, pathCLI} { // both columns, also under -paths
			f, ok := rw.by[via]
			if !ok {
				cells = append(cells, "—")
				continue
			}
			o, _, ra, _, st := f.cells()
			c := o
			if ra != "—" {
				c += " (" + ra + ")"
			}
			if st != "" {
				c += " " + st
			}
			cells = append(cells, c)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", rw.label, cells[0], cells[1], rw.direct, rw.target)
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
		if f.Path == describeFloor {
			f.Via = pathFloor // in the tables it stands in the WebSocket column
		}
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
	md := r.markdown() + rtspSection(dir) + countingSection(dir)
	return os.WriteFile(filepath.Join(dir, "perf.md"), []byte(md), 0o644)
}

// rtspSection carries the RTSP gateway's headline table (gnet
// against goroutine-per-connection, fan-out on and off) into perf.md from
// perf-rtsp.md in dir, which perf/rtspbench's figures fill: one page has
// every figure, and the RTSP sweep (~15 minutes) stays out of this
// harness's few-minute run.
func rtspSection(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "perf-rtsp.md"))
	if err != nil {
		return ""
	}
	_, rest, ok := strings.Cut(string(b), "\n## Result\n")
	if !ok {
		return ""
	}
	var table []string
	for _, l := range strings.Split(rest, "\n") {
		if strings.HasPrefix(l, "|") {
			table = append(table, l)
		} else if len(table) > 0 {
			break
		}
	}
	if len(table) == 0 {
		return ""
	}
	return "\n## RTSP gateway: concurrent 4 Mbit/s viewers\n\n" +
		"From [perf-rtsp.md](perf-rtsp.md) (`go run ./perf/rtspbench`, its own run; method, raw sweep and findings there). " +
		"Aim: at least 200 viewers.\n\n" + strings.Join(table, "\n") + "\n"
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
		mode += ", relay, agent and nanodems-tunnel with " + strings.Join(c.serverEnv, " ")
	}
	p("# Performance\n\n")
	p("End-to-end figures of the two operator paths through the relay, each beside direct loopback TCP to the same echo target in the same run: ")
	p("**WebSocket per tunnel** (`cli.DialTunnel`, `GET /api/tunnel/{handle}`) and **CLI mux** (`nanodems-tunnel run`: its OS listener, one stream per connection on one WebSocket to `/api/cli/mux`). ")
	p("Generated by `go run ./perf` (package `perf/`); do not edit by hand, rerun it.\n\n")
	p("How to run: `go run ./perf` (full, a few minutes on 2 cores) or `go run ./perf -quick` (about a minute); ")
	p("`go run ./perf -pprof` adds Go heap per idle tunnel and CPU profiles of relay and agent. Never part of `go test`.")
	p(" Beside frp and chisel, the tunnels a user would otherwise run: [perf-peers.md](perf-peers.md) (`go run ./perf -peers`).\n\n")
	p("| | |\n|---|---|\n")
	p("| date | %s |\n", r.started.UTC().Format("2006-01-02 15:04 MST"))
	p("| run | %s, %v |\n", mode, r.elapsed.Round(time.Second))
	p("| machine | `nproc` = %s, %s, Linux %s |\n", r.machine.NProc, r.machine.CPU, r.machine.Kernel)
	if r.machine.Idle != "" {
		p("| idle CPUs | %s |\n", r.machine.Idle)
	}
	p("| Go | %s |\n", r.machine.GoVersion)
	p("| modules | %s |\n\n", strings.Join(r.machine.Modules, ", "))

	if w := r.noise(); w != "" {
		p("> **Note:** %s\n\n", w)
	}
	p("![throughput and round trip](perf.svg)\n\n")
	p("## Figures\n\n")
	p("| figure | WebSocket per tunnel | ratio | CLI mux | ratio | direct | target | WebSocket | CLI mux |\n|---|---:|---:|---:|---:|---:|---|---|---|\n")
	for _, rw := range rows(r.figs) {
		var cells []string
		var sts []string
		for _, via := range tunnelPaths {
			f, ok := rw.by[via]
			if !ok {
				cells = append(cells, "—", "—")
				sts = append(sts, "")
				continue
			}
			o, _, ra, _, st := f.cells()
			if st == "missed" {
				st = "**missed**"
			}
			cells = append(cells, o, ra)
			sts = append(sts, st)
		}
		p("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", rw.label, cells[0], cells[1], cells[2], cells[3], rw.direct, rw.target, sts[0], sts[1])
	}
	p("\nRatio is ours ÷ direct. Targets are those of the product issues, judged per path. ")
	p("\"Direct\" for the CPU and memory figures is the echo target, a plain Go TCP server (one goroutine and a pooled 64 KiB copy buffer per connection): ")
	p("the cost of the simplest process that touches every byte or holds every connection.\n\n")

	r.missedNotes(p)

	p("## Method\n\n")
	p("- `go build` makes `nanodems-relay`, `nanodems-agent` and `nanodems-tunnel` in a temporary directory. ")
	p("The relay runs as `nanodems-relay serve` with its own data directory and TLS API on 127.0.0.1; the harness provisions a tenant, user, `nt_` token, site, device (the echo port → handle) and enrollment token through the HTTP API, ")
	p("runs `nanodems-agent enroll` and `nanodems-agent run`, and waits until the agent is online with the site's allowlist version; it then mints a CLI session (`POST /api/cli/sessions`) and starts `nanodems-tunnel run --token ops_…`, as an operator does. ")
	p("The echo target (`demo.StartEcho`) runs in its own process (this binary, `-serve-echo`); the harness is another. All five share the machine's cores.\n")
	p("- WebSocket per tunnel = `cli.DialTunnel` in the harness (WebSocket over TLS to `GET /api/tunnel/{handle}`, a new, resumed TLS connection per tunnel) → relay → smux v2 stream over the agent's TLS 1.3 session → agent → TCP to the echo target.\n")
	p("- CLI mux = TCP from the harness to the device's plan address (127.0.0.X:port), where `nanodems-tunnel run` listens → a stream on its one WebSocket (TLS) to `/api/cli/mux`, opened once → relay → smux stream to the agent → TCP to the echo target. One more process and one more loopback hop than the WebSocket path: what an operator's tool sees.\n")
	p("- Direct = `net.Dial` to the echo target.\n")
	p("- Floor = `net.Dial` to the first of two plain TCP forwarders chained in front of the echo target, each its own process (this binary, `-serve-forward`: io.Copy both ways, half-close kept). It crosses two processes between harness and target, as every tunnel crosses the relay and the agent, with no TLS and no multiplexing: what the process hops alone cost on this machine. Measured for throughput and the 64-byte round trip, in the same runs.\n")
	p("- Throughput: %d MiB per run, split over its connections; each connection has a writer goroutine (%d KiB Writes, then CloseWrite) and a reader goroutine (SHA-256 of what comes back, compared with the SHA-256 of what was sent). ", c.totalMiB, c.chunk>>10)
	p("MB/s = bytes echoed (one direction: each byte also went the other way) ÷ wall time from the first write to the last byte read; 1 MB = 10⁶ bytes. Median of %d run(s); the three paths take turns within each repeat.\n", c.repeats)
	p("- The agent moves a tunnel that carries more than its `DedicatedRate` (default 8 MiB/s, both directions) to a dedicated TLS connection of its own (BEP); the bulk runs measure that, as a product would behave. The details count the moves per run (agent log).\n")
	p("- CPU: utime+stime from `/proc/PID/stat` around the timed part of every throughput run, summed over all runs of a path, per GB (10⁹ bytes) echoed.\n")
	p("- Round trip: %d ping-pongs of 64 bytes on one connection after 200 warm-up ones; beside an unpaced bulk stream, %d.\n", c.rttSamples, c.rttSamples/2)
	p("- Head-of-line: %d ping-pongs while a second tunnel to the same target carries a paced %.0f MB/s each way (after 1 s, which lets the agent see the rate and move it), ", c.rttSamples, pacedRate/1e6)
	p("first with the agent as configured (dedicated connections on), then with the agent restarted with `--dedicated-rate -1` (every tunnel stays on the shared session). The target compares the p99 with dedicated connections on to the p99 of the same path measured idle just before (%d ping-pongs), so that both halves see the same load of the machine. ", c.rttSamples)
	p("The older \"beside an unpaced bulk tunnel\" figure pushes as fast as it can: on 2 cores that saturates both, and direct TCP's p99 blows up the same way, so it measures CPU contention, not head-of-line blocking.\n")
	p("- Opens: %d openers for %v, each: open, write 1 byte, read it back, close.\n", c.openPar, c.openDur)
	p("- Idle memory: VmRSS from `/proc/PID/status` before and 2 s after opening K tunnels (each with a 1-byte round trip, then idle), divided by K; measured first, before the bulk runs grow the heaps, and for each path on freshly started relay, agent and nanodems-tunnel (a Go process keeps freed memory a while, so the second path would reuse the first's). ")
	p("RSS counts touched pages only: a fresh 64 KiB buffer of which one page was written adds 4 KiB. `-pprof` adds the Go heap and stacks after a forced GC, which count whole objects.\n")
	p("- Diagnostics: `-perfstat` counts system calls and context switches of each process with Linux `perf stat`; `-pprof` runs relay and agent as roles of the perf binary (same `relay.New`/`agent.New` code, plus a loopback debug listener) and writes CPU, heap and goroutine profiles to `$TMPDIR/nanodems-perf-pprof/`; `-only throughput,rtt` runs some phases (without writing the report); `-server-env GOMAXPROCS=1` sets the environment of relay, agent and nanodems-tunnel (`relay:K=V`, `agent:K=V`, `cli:K=V`, `frp:K=V` or `chisel:K=V` for one of them); `-dedicated-rate N` sets the agent's (`nanodems-agent run --dedicated-rate`); `-paths cli` measures one tunnel path (without writing the report).\n\n")

	p("## Details\n\n### Throughput runs\n\n")
	p("CPU seconds per GB echoed, per process (cli = nanodems-tunnel); \"other\" is every other process of the machine during the runs (a busy neighbour on a 2-core machine lowers every MB/s figure). ")
	p("With -perfstat: system calls per MiB echoed.\n\n")
	p("| path | conns | MiB each | MB/s (runs) | median | relay CPU s/GB | agent | cli | echo | harness | other | moved to dedicated |%s\n|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|%s\n",
		map[bool]string{true: " syscalls/MiB relay, agent, cli, harness |"}[r.cfg.perfstat], map[bool]string{true: "---|"}[r.cfg.perfstat])
	for _, n := range c.concs {
		for _, path := range allPaths {
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
				if (path == pathDirect && (who == "relay" || who == "agent")) || (path != pathCLI && who == "cli") {
					return "—"
				}
				return num(r.cpuPerGB(path, who, n), 2)
			}
			sc := ""
			if r.cfg.perfstat {
				sc = " " + r.perMiB(path, n, "relay syscalls") + ", " + r.perMiB(path, n, "agent syscalls") + ", " + r.perMiB(path, n, "cli syscalls") + ", " + r.perMiB(path, n, "harness syscalls") + " |"
			}
			moved := "—"
			if path != pathDirect {
				var m []string
				for _, t := range all {
					m = append(m, fmt.Sprint(t.Moved))
				}
				moved = strings.Join(m, ", ")
			}
			p("| %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |%s\n", pathName[path], n, med.PerConn>>20, strings.Join(runs, ", "), num(med.MBps(), 0),
				cell("relay"), cell("agent"), cell("cli"), cell("echo"), cell("harness"), cell("other"), moved, sc)
		}
	}
	p("\n### Round trips (µs)\n\n| path | beside | p50 | p90 | p99 | p99.9 | max | mean | heavy stream MB/s | moved |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	us := func(d time.Duration) string { return num(float64(d)/1e3, 0) }
	line := func(path, beside string, t rttResult, extra string) {
		p("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", pathName[path], beside, us(t.pct(50)), us(t.pct(90)), us(t.pct(99)), us(t.pct(99.9)), us(t.pct(100)), us(t.mean()), extra)
	}
	for _, path := range allPaths {
		if t, ok := r.rtt[path]; ok {
			line(path, "nothing (idle)", t, "— | —")
		}
		for _, mode := range []string{"shared", "dedicated"} {
			key := path + " " + mode
			if path == pathDirect {
				if mode == "shared" {
					continue
				}
				key = path
			}
			if h, ok := r.hol[key+" idle"]; ok {
				what := "nothing, just before the next row"
				if path != pathDirect && mode == "shared" {
					what += " (agent --dedicated-rate -1)"
				}
				line(path, what, h.rttResult, "— | —")
			}
			if h, ok := r.hol[key]; ok {
				what := fmt.Sprintf("a %.0f MB/s tunnel, %s", pacedRate/1e6, map[string]string{"shared": "shared session only", "dedicated": "dedicated connections on"}[mode])
				if path == pathDirect {
					what = fmt.Sprintf("a %.0f MB/s connection", pacedRate/1e6)
				}
				moved := fmt.Sprint(h.Moved)
				if path == pathDirect {
					moved = "—"
				}
				line(path, what, h.rttResult, num(h.Rate/1e6, 1)+" | "+moved)
			}
		}
		if t, ok := r.rttLoaded[path]; ok {
			line(path, "an unpaced bulk stream (CPU saturated)", t, "— | —")
		}
	}
	p("\n### Opens\n\n| path | opens | seconds | per second | latency p50 | p99 | CPU µs per open: relay | agent | cli | echo | harness | other |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, path := range allPaths {
		o, ok := r.opens[path]
		if !ok {
			continue
		}
		per := func(who string) string {
			if path != pathCLI && who == "cli" {
				return "—"
			}
			return num(o.CPU[who]/float64(o.Ops)*1e6, 0)
		}
		p("| %s | %d | %.2f | %s | %s µs | %s µs | %s | %s | %s | %s | %s | %s |\n", pathName[path], o.Ops, o.Dur.Seconds(), num(o.perSec(), 0), num(float64(o.Latency.pct(50))/1e3, 0), num(float64(o.Latency.pct(99))/1e3, 0),
			per("relay"), per("agent"), per("cli"), per("echo"), per("harness"), per("other"))
	}
	for _, path := range tunnelPaths {
		id, ok := r.idle[path]
		if !ok || id.K == 0 {
			continue
		}
		mib := func(v int64) string { return num(float64(v)/(1<<20), 1) }
		p("\n### Idle tunnels, %s (K=%d, opened in %v, closed in %v)\n\n", pathName[path], id.K, id.OpenDur.Round(time.Millisecond), id.CloseDur.Round(time.Millisecond))
		p("| process | RSS before | with K open | after closing | per tunnel | threads with K open |\n|---|---:|---:|---:|---:|---:|\n")
		for _, who := range []string{"relay", "agent", "cli", "echo"} {
			if _, ok := id.After.RSS[who]; !ok {
				continue
			}
			name := who
			if who == "cli" {
				name = "nanodems-tunnel"
			}
			p("| %s | %s MiB | %s MiB | %s MiB | %s KiB | %d |\n", name, mib(id.Before.RSS[who]), mib(id.After.RSS[who]), mib(id.Closed.RSS[who]),
				num(id.perConn(who)/1024, 1), id.After.Threads[who])
		}
		if len(id.After.Mem) > 0 {
			p("\nGo runtime (after a forced GC, -pprof):\n\n| process | heap in use before → with K | stacks before → with K | goroutines before → with K | goroutines per tunnel |\n|---|---:|---:|---:|---:|\n")
			for _, who := range []string{"relay", "agent", "cli"} {
				bm, ok := id.Before.Mem[who]
				am, ok2 := id.After.Mem[who]
				if !ok || !ok2 {
					continue
				}
				name := who
				if who == "cli" {
					name = "nanodems-tunnel"
				}
				p("| %s | %s → %s MiB | %s → %s MiB | %d → %d | %.1f |\n", name,
					num(float64(bm.HeapInuse)/(1<<20), 1), num(float64(am.HeapInuse)/(1<<20), 1),
					num(float64(bm.StackInuse)/(1<<20), 1), num(float64(am.StackInuse)/(1<<20), 1),
					bm.Goroutines, am.Goroutines, float64(am.Goroutines-bm.Goroutines)/float64(id.K))
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

// svg draws three bar charts by hand: throughput, idle round trip, and
// round trip beside a paced heavy tunnel; a bar per path.
func (r *report) svg() string {
	type bar struct {
		group string
		v     []float64 // ws, cli, direct (0: none)
	}
	var tp, rt, hl []bar
	for _, n := range r.cfg.concs {
		var v []float64
		for _, path := range allPaths {
			m, _ := median(r.tp, path, n)
			if m.Dur > 0 {
				v = append(v, m.MBps())
			} else {
				v = append(v, 0)
			}
		}
		tp = append(tp, bar{fmt.Sprintf("%d tunnel%s", n, plural(n)), v})
	}
	us := func(x time.Duration) float64 { return float64(x) / 1e3 }
	for _, pc := range []float64{50, 99} {
		var v []float64
		for _, path := range allPaths {
			v = append(v, us(r.rtt[path].pct(pc)))
		}
		rt = append(rt, bar{fmt.Sprintf("p%.0f", pc), v})
	}
	for _, mode := range []string{"dedicated idle", "shared", "dedicated"} {
		var v []float64
		for _, path := range allPaths {
			key := path + " " + mode
			if path == pathDirect {
				key = strings.Replace(key, " dedicated", "", 1)
				if mode == "shared" {
					key = path
				}
			}
			v = append(v, us(r.hol[key].pct(99)))
		}
		hl = append(hl, bar{map[string]string{"dedicated idle": "p99 idle", "shared": "p99, shared only", "dedicated": "p99, dedicated on"}[mode], v})
	}
	const (
		W, H      = 1100, 370
		top, base = 70, 300 // bar area from y=top to y=base
		barW      = 24
	)
	cols := []string{"#2f6db5", "#d9822b", "#a8a8a8"}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%d" y="20" font-size="15" font-weight="bold">nanodems tunnel paths vs direct loopback TCP, %s (%s cores)</text>`+"\n", 20, r.started.UTC().Format("2006-01-02"), r.machine.NProc)
	x := 20
	for i, path := range allPaths {
		p(`<rect x="%d" y="30" width="12" height="12" fill="%s"/><text x="%d" y="41">%s</text>`, x, cols[i], x+16, xmlEsc(pathName[path]))
		x += 40 + 7*len(pathName[path])
	}
	p("\n")
	panel := func(x0, panelW int, title, unit string, bars []bar) {
		p(`<text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", x0, top-8, xmlEsc(title))
		max := 0.0
		for _, br := range bars {
			for _, v := range br.v {
				max = math.Max(max, v)
			}
		}
		if max == 0 || len(bars) == 0 {
			return
		}
		max *= 1.12
		p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`+"\n", x0, base, x0+panelW, base)
		gw := panelW / len(bars)
		for i, br := range bars {
			n := len(br.v)
			gx := x0 + i*gw + (gw-n*barW-(n-1)*4)/2
			for j, v := range br.v {
				if v == 0 {
					continue
				}
				h := v / max * float64(base-top)
				x := gx + j*(barW+4)
				p(`<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="%s"/>`, x, float64(base)-h, barW, h, cols[j])
				p(`<text x="%d" y="%.1f" text-anchor="middle" font-size="9">%s</text>`+"\n", x+barW/2, float64(base)-h-3, num(v, 0))
			}
			p(`<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", x0+i*gw+gw/2, base+16, xmlEsc(br.group))
			if d := br.v[len(br.v)-1]; d > 0 && len(br.v) == 3 {
				p(`<text x="%d" y="%d" text-anchor="middle" font-size="10" fill="#555">%.2f× / %.2f×</text>`+"\n", x0+i*gw+gw/2, base+30, br.v[0]/d, br.v[1]/d)
			}
		}
		p(`<text x="%d" y="%d" font-size="10" fill="#555">%s; ratios = WebSocket ÷ direct / CLI mux ÷ direct</text>`+"\n", x0, base+50, xmlEsc(unit))
	}
	panel(20, 420, "Throughput (higher is better)", "MB/s of echoed bytes, one direction", tp)
	panel(480, 250, "64 B round trip, idle (lower is better)", "µs", rt)
	panel(770, 320, fmt.Sprintf("64 B round trip beside a %.0f MB/s tunnel", pacedRate/1e6), "µs", hl)
	p("</svg>\n")
	return b.String()
}

func xmlEsc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
