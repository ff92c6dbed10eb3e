package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// The counting figure (-counting): the agent's CPU per GB echoed with its
// tunnel bytes counted in the kernel (eBPF, agent/bpfcount), in its copy
// loop (userspace), and not at all (off), in the same run: the agent is
// restarted with --counting before every throughput run, the three modes
// take turns within each repeat, in an order that rotates from one
// repeat to the next, so that drift of the machine hits them alike. Every
// mode runs with --dedicated-rate -1: the rate watch that moves heavy
// tunnels to connections of their own reads the byte counts, which off
// does not keep, so with it on the modes would take different data
// paths. It writes docs/perf-counting.md.

// countingModes are the agent's --counting values, the baseline last.
var countingModes = []string{"auto", "userspace", "off"}

// countingLine is the start of the agent's one log line about its mode.
const countingLine = "counting="

// countingFigure is one mode's sums over its runs.
type countingFigure struct {
	mode      string // what the agent said it runs: ebpf, userspace, off
	bytes     int64  // echoed, one direction
	agentCPU  float64
	relayCPU  float64
	otherCPU  float64
	wall      time.Duration
	runs      int
	perRunCPU []float64 // agent CPU s per GB of each run
}

func (f *countingFigure) perGB() float64 { return f.agentCPU / (float64(f.bytes) / 1e9) }

func runCounting(ctx context.Context, c *config, e *env) (err error) {
	started := time.Now()
	p := &payload{pool: make([]byte, 16<<20+12345), chunk: c.chunk}
	rand.Read(p.pool)
	const conns = 8
	per := int64(c.totalMiB) << 20 / conns
	sums := make([][32]byte, conns)
	for i := range sums {
		sums[i] = p.sum(i, per)
	}
	figs := map[string]*countingFigure{}
	for _, m := range countingModes {
		figs[m] = &countingFigure{}
	}
	// The agent runs in a cgroup of its own, as under its systemd unit:
	// its programs then run for its own packets only, not for those of
	// every process in the harness's cgroup (the root one, on a CI host).
	cg, err := newAgentCgroup()
	if err != nil {
		logf("agent in the harness's cgroup: %v", err)
		e.cgroupNote = "the agent ran in the harness's cgroup (" + err.Error() + "), so its programs ran for every packet of the processes there"
	} else {
		defer func() {
			e.agent.stop(5 * time.Second) // a cgroup goes once its last process has
			cg.close()
		}()
		e.agentCgroup = cg
		e.cgroupNote = "the agent ran in a cgroup of its own (`" + cg.dir + "`), as under its systemd unit, so its programs ran for its own packets only"
	}
	for rep := range c.repeats {
		order := append(slices.Clone(countingModes[rep%len(countingModes):]), countingModes[:rep%len(countingModes)]...)
		for _, mode := range order {
			res, said, err := countingRun(ctx, e, mode, p, sums, conns, per)
			if err != nil {
				return err
			}
			f := figs[mode]
			if f.mode != "" && f.mode != said {
				return fmt.Errorf("agent --counting %s ran %s, then %s", mode, f.mode, said)
			}
			f.mode = said
			f.bytes += res.Bytes
			f.agentCPU += res.CPU["agent"]
			f.relayCPU += res.CPU["relay"]
			f.otherCPU += res.CPU["other"]
			f.wall += res.Dur
			f.runs++
			f.perRunCPU = append(f.perRunCPU, res.CPU["agent"]/(float64(res.Bytes)/1e9))
			logf("counting %-9s (%s) run %d: %.0f MB/s, agent %.2f CPU s (%.3f CPU s/GB), relay %.2f, other processes %.2f",
				mode, said, rep+1, res.MBps(), res.CPU["agent"], f.perRunCPU[len(f.perRunCPU)-1], res.CPU["relay"], res.CPU["other"])
		}
	}
	var ps progStats
	if figs["auto"].mode == "ebpf" {
		if ps, err = countingProgStats(ctx, e, p, sums, conns, per); err != nil {
			logf("the programs' own run time: %v", err)
			ps.err = err
		}
	}
	md := countingReport(c, e, figs, ps, conns, time.Since(started))
	fmt.Print(md)
	if c.write {
		out := filepath.Join(c.outDir, "perf-counting.md")
		if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
			return err
		}
		logf("wrote %s", out)
		if err := spliceCounting(c.outDir); err != nil {
			return err
		}
		logf("updated its section of %s", filepath.Join(c.outDir, "perf.md"))
	}
	return nil
}

// countingHeading starts perf.md's section with the counting figure.
const countingHeading = "\n## Agent byte counting: eBPF, userspace, none\n"

// countingSection carries the counting table into perf.md from
// perf-counting.md in dir, as rtspSection does the RTSP gateway's: the
// main run does not measure it.
func countingSection(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "perf-counting.md"))
	if err != nil {
		return ""
	}
	var table []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "|") {
			table = append(table, l)
		} else if len(table) > 0 {
			break
		}
	}
	if len(table) == 0 {
		return ""
	}
	return countingHeading + "\n" +
		"From [perf-counting.md](perf-counting.md) (`nice -n -20 go run ./perf -counting`, its own run; method there): the agent's CPU per GB echoed with its tunnel bytes counted in the kernel, in its copy loop, and not at all. " +
		"Aim: counting costs under 2 % of the agent's CPU.\n\n" + strings.Join(table, "\n") + "\n"
}

// spliceCounting puts this run's counting section into dir's perf.md in
// place of the one it holds (or at its end), leaving the rest, which
// only the main run writes, as it is.
func spliceCounting(dir string) error {
	path := filepath.Join(dir, "perf.md")
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	md := string(b)
	if i := strings.Index(md, countingHeading); i >= 0 {
		rest := md[i+len(countingHeading):]
		tail := ""
		if j := strings.Index(rest, "\n## "); j >= 0 {
			tail = rest[j:]
		}
		md = md[:i] + tail
	}
	return os.WriteFile(path, []byte(md+countingSection(dir)), 0o644)
}

// countingRun restarts the agent with --counting mode and measures one
// throughput run; said is the mode the agent logged.
func countingRun(ctx context.Context, e *env, mode string, p *payload, sums [][32]byte, conns int, per int64) (tpResult, string, error) {
	return countingRunWith(ctx, e, mode, p, sums, conns, per, nil)
}

// countingRunWith is countingRun that calls ready, if not nil, once the
// agent runs and before the transfer.
func countingRunWith(ctx context.Context, e *env, mode string, p *payload, sums [][32]byte, conns int, per int64, ready func()) (res tpResult, said string, err error) {
	e.agent.stop(5 * time.Second)
	args := append(slices.Clip(e.agentArgs), "--counting", mode, "--dedicated-rate", "-1")
	fd := -1
	if e.agentCgroup != nil {
		fd = int(e.agentCgroup.f.Fd())
	}
	if e.agent, err = children.startIn(fd, e.tmp, "agent", e.agentPath, args, e.cfg.envFor("agent"), movedLine, countingLine); err != nil {
		return res, "", err
	}
	if err := e.waitOnline(ctx); err != nil {
		return res, "", err
	}
	line, err := e.agent.waitLine(ctx, countingLine, 10*time.Second)
	if err != nil {
		return res, "", fmt.Errorf("agent --counting %s did not say its mode: %w", mode, err)
	}
	said = line[strings.Index(line, countingLine)+len(countingLine):]
	said, _, _ = strings.Cut(said, " ")
	if ready != nil {
		ready()
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	res, err = throughput(rctx, e.dial[pathWS], conns, per, p, sums, e.meter())
	if err != nil {
		if aerr := e.alive(); aerr != nil {
			return res, said, aerr
		}
		return res, said, fmt.Errorf("throughput with --counting %s: %w", mode, err)
	}
	return res, said, nil
}

// progStats is the kernel's own account of the counting programs' run
// time during one more eBPF run (kernel.bpf_stats_enabled on for it
// alone: the accounting costs two clock reads per program run, which the
// mode's figures above must not carry).
type progStats struct {
	runtime  time.Duration
	runs     uint64
	agentCPU float64
	bytes    int64
	err      error
}

func countingProgStats(ctx context.Context, e *env, p *payload, sums [][32]byte, conns int, per int64) (progStats, error) {
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		return progStats{}, fmt.Errorf("enable BPF run-time stats: %w", err)
	}
	defer stats.Close()
	// The agent loads its programs when it starts: read them after.
	var before progTotals
	res, _, err := countingRunWith(ctx, e, "auto", p, sums, conns, per, func() { before = countingPrograms() })
	if err != nil {
		return progStats{}, err
	}
	after := countingPrograms()
	logf("counting programs: %v in %d runs during %d MiB echoed (agent %.2f CPU s)", after.runtime-before.runtime, after.runs-before.runs, res.Bytes>>20, res.CPU["agent"])
	return progStats{runtime: after.runtime - before.runtime, runs: after.runs - before.runs, agentCPU: res.CPU["agent"], bytes: res.Bytes}, nil
}

// progTotals sums the kernel's run-time stats of every loaded program
// named as the agent's counting programs.
type progTotals struct {
	runtime time.Duration
	runs    uint64
}

func countingPrograms() progTotals {
	var t progTotals
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				logf("list BPF programs: %v", err)
			}
			return t
		}
		id = next
		prog, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // gone meanwhile
		}
		if info, err := prog.Info(); err == nil && (info.Name == "count_ingress" || info.Name == "count_egress") {
			if st, err := prog.Stats(); err == nil {
				t.runtime += st.Runtime
				t.runs += st.RunCount
			}
		}
		prog.Close()
	}
}

func countingReport(c *config, e *env, figs map[string]*countingFigure, ps progStats, conns int, elapsed time.Duration) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	base := figs["off"]
	w("# Performance: what counting tunnel bytes costs the agent\n\n")
	cmd := "nice -n -20 go run ./perf -counting"
	if c.quick {
		cmd += " -quick"
	}
	w("Written by `%s` (perf/counting.go); %s, %d cores, GOMAXPROCS %d, %d WebSocket tunnels echoing %d MiB per run through the relay and the agent (one direction; every byte also comes back), %d run(s) per mode; the run took %v.\n\n",
		cmd, time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.GOMAXPROCS(0), conns, c.totalMiB, c.repeats, elapsed.Round(time.Second))
	w("The agent is restarted with `--counting MODE --dedicated-rate -1` before every run (every tunnel on the shared session: the rate watch reads the counts, which `off` does not keep, so with it on the modes would take different data paths), and the modes take turns within each repeat, in an order that rotates between repeats. Agent CPU is utime + stime from `/proc/PID/stat` around the timed part of each run: in eBPF mode the programs run in the kernel, on the CPU of whichever process sends or receives the packet, so the agent's stime holds its share of them.\n\n")
	w("| --counting | the agent ran | agent CPU s per GB echoed | vs off | median run | relay CPU s per GB | other processes' CPU s per GB |\n| --- | --- | ---: | ---: | ---: | ---: | ---: |\n")
	for _, m := range countingModes {
		f := figs[m]
		gb := float64(f.bytes) / 1e9
		rel := "—"
		if m != "off" && base.perGB() > 0 {
			rel = fmt.Sprintf("%+.1f %%", (f.perGB()/base.perGB()-1)*100)
		}
		runs := slices.Clone(f.perRunCPU)
		slices.Sort(runs)
		med := 0.0
		if len(runs) > 0 {
			med = runs[len(runs)/2]
		}
		w("| %s | %s | %.3f | %s | %.3f | %.3f | %.3f |\n", m, f.mode, f.perGB(), rel, med, f.relayCPU/gb, f.otherCPU/gb)
	}
	if ps.runs > 0 {
		w("\nThe kernel's own account of the two programs (`kernel.bpf_stats_enabled`, on for one more eBPF run only): %v in %d runs (%.0f ns a run) while %d MiB were echoed, against %.2f CPU s of the agent in that run: the programs took **%.2f %%** of the agent's CPU. In this run %s.\n",
			ps.runtime.Round(time.Microsecond), ps.runs, float64(ps.runtime.Nanoseconds())/float64(ps.runs), ps.bytes>>20, ps.agentCPU, ps.runtime.Seconds()/ps.agentCPU*100, e.cgroupNote)
	} else if ps.err != nil {
		w("\nThe programs' own run time could not be read: %v.\n", ps.err)
	}
	w("\nTarget: counting costs under 2 %% of the agent's CPU. \"vs off\" is (mode − off) ÷ off over all runs of each mode; on a shared 2-core machine its noise is a few per cent either way, which the per-run medians show.\n")
	return b.String()
}

// agentCgroup is a cgroup v2 directory made for the agent, and open for
// clone3's CLONE_INTO_CGROUP.
type agentCgroup struct {
	dir string
	f   *os.File
}

// newAgentCgroup makes a child of the harness's own cgroup v2.
func newAgentCgroup() (*agentCgroup, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	rel, found := "", false
	for _, l := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			rel, found = p, true
		}
	}
	if !found {
		return nil, errors.New("no cgroup v2")
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	mnt := ""
	for _, l := range strings.Split(string(mi), "\n") {
		pre, post, ok := strings.Cut(l, " - ")
		if f := strings.Fields(pre); ok && strings.HasPrefix(post, "cgroup2 ") && len(f) >= 5 {
			mnt = f[4]
			break
		}
	}
	if mnt == "" {
		return nil, errors.New("no cgroup2 mount")
	}
	dir := filepath.Join(mnt, rel, fmt.Sprintf("nanodems-perf-agent-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Open(dir)
	if err != nil {
		os.Remove(dir)
		return nil, err
	}
	return &agentCgroup{dir: dir, f: f}, nil
}

// close removes the cgroup once the agent in it has stopped.
func (g *agentCgroup) close() {
	g.f.Close()
	for range 50 { // the last process leaves the cgroup asynchronously
		if err := os.Remove(g.dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	logf("cgroup %s left behind", g.dir)
}
