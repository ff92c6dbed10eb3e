package main

import (
	"cmp"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"time"
)

// peerFigure is one row of the peers table: how to read it from a
// repetition, which way is better, and the targets of the CLI path as
// ratios to frp's default tcp proxy.
type peerFigure struct {
	name   string
	unit   string
	dec    int
	higher bool // higher is better
	get    func(peerRun) float64
	// target is the CLI path's bound as a ratio to frp tcp (≥ when
	// higher is better, ≤ otherwise); 0: none.
	target float64
	direct bool // direct TCP has this figure
	bare   bool // the bare chains have this figure (bare.go)
}

// peerFigures are the rows, in order.
var peerFigures = []peerFigure{
	{name: "throughput, 1 stream", bare: true, unit: "MB/s", higher: true, target: 1.3, direct: true, get: func(r peerRun) float64 { return r.MBps[1] }},
	{name: "throughput, 8 streams", bare: true, unit: "MB/s", higher: true, target: 1.3, direct: true, get: func(r peerRun) float64 { return r.MBps[8] }},
	{name: "throughput, 64 streams", bare: true, unit: "MB/s", higher: true, direct: true, get: func(r peerRun) float64 { return r.MBps[64] }},
	{name: "64 B round trip p50", bare: true, unit: "µs", target: 0.8, direct: true, get: func(r peerRun) float64 { return us(r.P50) }},
	{name: "64 B round trip p99", bare: true, unit: "µs", target: 0.8, direct: true, get: func(r peerRun) float64 { return us(r.P99) }},
	{name: "connections per second", unit: "/s", higher: true, target: 1.4, direct: true, get: func(r peerRun) float64 { return r.Opens }},
	{name: "CPU of all tunnel processes per connection opened", unit: "µs", get: func(r peerRun) float64 { return r.openCPUTotal() }},
	{name: "RSS of all tunnel processes, 1,000 connections echoing 64 B every 100 ms", unit: "MiB", dec: 1, target: 0.8,
		get: func(r peerRun) float64 { return float64(r.Load.rssTotal()) / (1 << 20) }},
	{name: "CPU of all tunnel processes over those 10 s", unit: "CPU s", dec: 2, target: 1.0, get: func(r peerRun) float64 { return r.Load.cpuTotal() }},
	{name: "64 B echoes per second achieved under that load (asked: 10,000)", unit: "/s", higher: true, direct: true, get: func(r peerRun) float64 { return float64(r.Load.Echoes) / loadFor.Seconds() }},
	{name: "64 B echo p50 under that load", unit: "ms", dec: 1, direct: true, get: func(r peerRun) float64 { return us(r.Load.P50) / 1000 }},
	{name: "64 B echo p99 under that load", unit: "ms", dec: 1, direct: true, get: func(r peerRun) float64 { return us(r.Load.P99) / 1000 }},
}

// stcpLead is the lead the CLI path is to have over frp stcp + visitor
// (same hops, same encryption) on every figure.
const stcpLead = 1.5

// peerName is how the report names a path.
var peerName = map[string]string{
	pathDirect:     "direct",
	pathCLI:        "nanodems CLI",
	pathFrpTCP:     "frp tcp (default: mux, TLS)",
	pathFrpSTCP:    "frp stcp + visitor",
	pathChisel:     "chisel (reverse forward)",
	pathBare2:      "bare 2 hops (frp tcp's shape)",
	pathBare3:      "bare 3 hops (the CLI's shape)",
	pathBare3Blind: "bare 3 hops, blind middle (the CLI's processes, TLS end to end)",
}

type peersReport struct {
	cfg     *config
	machine machine
	frp     string
	chisel  string
	runs    map[string][]peerRun // by path, one per repetition
	elapsed time.Duration
	niced   int

	med map[string][]float64 // by path: the median of each figure, in peerFigures order
}

// medianOf is the median of vs (the mean of the middle two for an even
// count); NaN for none.
func medianOf(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// compute fills med.
func (r *peersReport) compute() {
	r.med = map[string][]float64{}
	for path, runs := range r.runs {
		m := make([]float64, len(peerFigures))
		for i, f := range peerFigures {
			if path == pathDirect && !f.direct || isBare(path) && !f.bare {
				m[i] = math.NaN()
				continue
			}
			vs := make([]float64, 0, len(runs))
			for _, run := range runs {
				vs = append(vs, f.get(run))
			}
			m[i] = medianOf(vs)
		}
		r.med[path] = m
	}
}

// ratio is path's median of figure i over frp tcp's.
func (r *peersReport) ratio(path string, i int) float64 {
	base := r.med[pathFrpTCP]
	v := r.med[path]
	if base == nil || v == nil || base[i] == 0 || math.IsNaN(v[i]) {
		return math.NaN()
	}
	return v[i] / base[i]
}

// met says whether ratio q meets bound t in the figure's direction.
func (f peerFigure) met(q, t float64) bool {
	if f.higher {
		return q >= t
	}
	return q <= t
}

// lead is how many times better a is than b on figure f (above 1: a leads).
func (f peerFigure) lead(a, b float64) float64 {
	if f.higher {
		return a / b
	}
	return b / a
}

func (r *peersReport) cell(path string, i int) string {
	v := r.med[path]
	if v == nil || math.IsNaN(v[i]) {
		return "–"
	}
	s := num(v[i], peerFigures[i].dec) + " " + peerFigures[i].unit
	if path != pathFrpTCP {
		if q := r.ratio(path, i); !math.IsNaN(q) {
			s += fmt.Sprintf(" (%.2f×)", q)
		}
	}
	return s
}

// loadParts is the per-process RSS (MiB) and CPU of path's median load run.
func (r *peersReport) loadParts(path string) string {
	runs := slices.Clone(r.runs[path])
	if len(runs) == 0 || runs[0].Load.RSS == nil || len(runs[0].Load.RSS) == 0 {
		return ""
	}
	slices.SortFunc(runs, func(a, b peerRun) int { return int(a.Load.rssTotal() - b.Load.rssTotal()) })
	l := runs[len(runs)/2].Load
	s := fmt.Sprintf("RSS %s MiB; CPU %s s", fmtParts(l.RSS, func(v int64) string { return num(float64(v)/(1<<20), 0) }),
		fmtParts(l.CPU, func(v float64) string { return num(v, 1) }))
	if o := r.openParts(path); o != "" {
		s += "; CPU per connection opened " + o
	}
	return s
}

// openParts is the per-process CPU per connection opened (µs) of path's
// median repetition by that figure.
func (r *peersReport) openParts(path string) string {
	runs := slices.Clone(r.runs[path])
	if len(runs) == 0 || len(runs[0].OpenCPU) == 0 {
		return ""
	}
	slices.SortFunc(runs, func(a, b peerRun) int { return cmp.Compare(a.openCPUTotal(), b.openCPUTotal()) })
	return fmtParts(runs[len(runs)/2].OpenCPU, func(v float64) string { return num(v, 0) }) + " µs"
}

// rows renders the table body shared by the terminal and the document.
func (r *peersReport) rows() [][]string {
	var out [][]string
	for i, f := range peerFigures {
		row := []string{f.name}
		for _, p := range peerColumns {
			row = append(row, r.cell(p, i))
		}
		q := r.ratio(pathCLI, i)
		switch {
		case f.target == 0 || math.IsNaN(q):
			row = append(row, "")
		case f.met(q, f.target):
			row = append(row, fmt.Sprintf("%s %.1f×: met", cmpSign(f.higher), f.target))
		default:
			row = append(row, fmt.Sprintf("%s %.1f×: **missed**", cmpSign(f.higher), f.target))
		}
		cli, stcp := r.med[pathCLI], r.med[pathFrpSTCP]
		if cli == nil || stcp == nil || math.IsNaN(cli[i]) || stcp[i] == 0 {
			row = append(row, "–")
		} else {
			l := f.lead(cli[i], stcp[i])
			verdict := "met"
			if l < stcpLead {
				verdict = "**missed**"
			}
			row = append(row, fmt.Sprintf("%.2f× (%s)", l, verdict))
		}
		out = append(out, row)
	}
	return out
}

func cmpSign(higher bool) string {
	if higher {
		return "≥"
	}
	return "≤"
}

var peerHeader = []string{"figure (medians)", "direct", "nanodems CLI", "frp tcp proxy, default (mux, TLS)", "frp stcp + visitor", "chisel, reverse forward (SSH over WebSocket)", "CLI target vs frp tcp", "CLI lead over frp stcp (target ≥ 1.5×)"}

// Columns of a row after the paths' (peerColumns): the CLI path's target
// and its lead over frp stcp.
var (
	colTarget = 1 + len(peerColumns)
	colLead   = colTarget + 1
)

// table is the plain-text table printed at the end of the run.
func (r *peersReport) table() string {
	rows := append([][]string{peerHeader}, r.rows()...)
	w := make([]int, len(peerHeader))
	for _, row := range rows {
		for j, c := range row {
			w[j] = max(w[j], len([]rune(c)))
		}
	}
	var b strings.Builder
	for _, row := range rows {
		for j, c := range row {
			fmt.Fprintf(&b, "%-*s  ", w[j], c)
		}
		b.WriteString("\n")
	}
	b.WriteString("(ratios in parentheses: ÷ frp tcp, same run)\n")
	return b.String()
}

func (r *peersReport) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	c := r.cfg
	cmd := "go run ./perf -peers"
	if c.quick {
		cmd += " -quick"
	}
	p("# Performance beside frp\n\n")
	p("The operator's CLI path beside frp, the tunnel a user would otherwise run, and direct loopback TCP, measured in one run by `%s` (perf/peers.go) with the same clients against the same echo target. Generated; do not edit by hand, rerun it.\n\n", cmd)
	p("| | |\n|---|---|\n")
	p("| date | %s |\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	p("| run | %d repetition%s (medians), %d MiB per throughput run, %d round trips, opens for %v with %d openers; took %v |\n",
		c.repeats, plural(c.repeats), c.totalMiB, c.rttSamples, c.openDur, c.openPar, r.elapsed.Round(time.Second))
	p("| machine | `nproc` = %s, %s, Linux %s |\n", r.machine.NProc, r.machine.CPU, r.machine.Kernel)
	if r.machine.Idle != "" {
		p("| idle CPUs | %s (see [perf-peers-changes.md](perf-peers-changes.md): how an idle CPU waits moves the round trip and the CPU figures) |\n", r.machine.Idle)
	}
	p("| Go | %s (GOMAXPROCS %d) |\n", r.machine.GoVersion, runtime.GOMAXPROCS(0))
	p("| frp | %s, built from perf/peers (`-tags noweb`) |\n", r.frp)
	if r.chisel != "" {
		p("| chisel | %s, built from perf/peers/chisel |\n", r.chisel)
	}
	p("| harness niceness | %d (the tunnel processes inherit it) |\n", r.niced)
	if l := r.machine.Load; len(l) == 3 {
		p("| load average at the end | %.2f, %.2f, %.2f (1, 5, 15 min) |\n", l[0], l[1], l[2])
	}
	p("\n")
	p("> **Read the ratios.** This machine may be shared with other work, and the load average above includes the harness and the tunnel processes themselves (3 to 7 on this 2-CPU machine when nothing else runs); absolute figures follow that load. The ratios compare paths measured in the same run, the paths taking turns within each repetition, and are the figures to read.\n\n")
	p("![ratios to frp tcp](perf-peers.svg)\n\n")
	p("| %s |\n|%s\n", strings.Join(peerHeader, " | "), strings.Repeat("---|", len(peerHeader)))
	for _, row := range r.rows() {
		p("| %s |\n", strings.Join(row, " | "))
	}
	p("\nRatios in parentheses are ÷ frp's default tcp proxy in the same run; for round trips, RSS and CPU lower is better. The lead over frp stcp + visitor is how many times better the CLI path is (above 1: ahead).\n\n")
	p("Where the memory and CPU go, per process (the load figure's from the median repetition by RSS, the CPU per connection opened from the median repetition by that figure):\n\n")
	for _, path := range peerColumns[1:] { // direct has no tunnel process
		if s := r.loadParts(path); s != "" {
			p("- %s: %s\n", peerName[path], s)
		}
	}
	if sec := r.shapeSection(); sec != "" {
		p("\n%s", sec)
	}
	p("\n## Paths\n\n")
	p("- **direct**: TCP to the echo target. Its load run (no tunnel process, so no RSS or CPU figure) is the floor of the echo figures: what the harness and the echo target manage on this machine.\n")
	p("- **nanodems CLI**: TCP to `nanodems-tunnel run`'s listener on the device's plan address (127.0.0.X) → a stream on its one TLS session to the relay (smux, negotiated by ALPN `nanodems-cli/1`) → smux stream over the agent's TLS session → agent → TCP to the echo target. Tunnel processes: relay, agent, nanodems-tunnel. The client's leg to the relay is encrypted.\n")
	p("- **frp tcp proxy, default**: TCP to frps's remote port → a yamux stream over frpc's TLS connection → frpc → TCP to the echo target. Tunnel processes: frps, frpc. The client reaches frps in clear: one hop fewer than ours and no encryption on the client's leg; the setup frp users run.\n")
	p("- **frp stcp + visitor**: TCP to a visitor frpc on 127.0.0.1 → TLS (mux) to frps → frpc → TCP to the echo target. Tunnel processes: frps, frpc, visitor frpc. Same hops and the same encryption of the client's leg as ours.\n")
	p("- **chisel, reverse forward**: TCP to the chisel server's listener of the forward (`R:` remote, asked for by the client) → an SSH channel over the client's one WebSocket (plain HTTP: chisel's default, SSH encrypts) → chisel client → TCP to the echo target. Tunnel processes: chisel server, chisel client. frp tcp's shape: the client reaches the server in clear.\n")
	p("- **bare 2 hops**, **bare 3 hops** and **bare 3 hops, blind middle** (perf/bare.go): chains of this binary's `-serve-hop` processes, each accepting, dialling on and copying both ways with io.Copy, over crypto/tls where the shape has TLS, one TLS connection per client connection, no multiplexing. Bare 2: client → plain→TLS hop → TLS→plain hop → echo, frp tcp's shape. Bare 3: client → plain→TLS hop → TLS→TLS hop → TLS→plain hop → echo, the CLI path's shape. Bare 3, blind middle: client → plain→TLS hop → plain forwarder (io.Copy between TCP sockets: splice) → TLS→plain hop → echo, one TLS session end to end. Measured for throughput and the round trip only: with a handshake per connection, their connection rate and memory would not be a multiplexed tunnel's.\n\n")
	p("frp runs with its defaults (`transport.tls.enable` and `transport.tcpMux` on) but for addresses, `auth.token` and `log.level = \"warn\"` (the relay runs with `--log-level warn` here too). chisel runs with its defaults but for addresses and `--auth` (a user, chisel's counterpart of frp's token): `chisel server --reverse`, `chisel client <server> R:<listen>:<echo>`.\n\n")
	p("## Method\n\n")
	p("- Every repetition measures every path in turn (direct, CLI, frp tcp, frp stcp, chisel, bare 2, bare 3, bare 3 blind); figures are medians over repetitions.\n")
	p("- Throughput: %d MiB per run split over 1, 8 or 64 connections; each connection has a writer (32 KiB writes, then CloseWrite) and a reader that checks the SHA-256 of what comes back. MB/s = bytes echoed (one direction) ÷ wall time; 1 MB = 10⁶ bytes.\n", c.totalMiB)
	p("- Round trip: %d ping-pongs of 64 bytes on one connection after 200 warm-up ones.\n", c.rttSamples)
	p("- Connections per second: %d openers for %v, each opening a connection, echoing 1 byte and closing it (direct: at most 2 s, TIME_WAIT). CPU per connection opened: utime+stime of the path's tunnel processes over that window ÷ the connections opened in it; with the openers keeping both CPUs busy, the connection rate follows it.\n", c.openPar, c.openDur)
	p("- Load: before the other figures of a repetition, the path's tunnel processes are restarted (fresh heaps, as a Go process keeps freed memory), %d connections are opened (each with a 1-byte echo), then each echoes %d random bytes every %v (starts spread over the interval) for %v, every echo checked. RSS is VmRSS of every tunnel process at the end of the window with every connection open; CPU is utime+stime over the window.\n", loadConns, loadSize, loadEvery, loadFor)
	p("- Chart: the CLI path, frp stcp + visitor and chisel as ratios to frp tcp, oriented so that right of the 1× line is better (for round trips, RSS and CPU the bar is frp tcp ÷ path).\n")
	p("\nBefore and after of each change to the CLI path, measured with this harness: [perf-peers-changes.md](perf-peers-changes.md) (written by hand; this file is regenerated).\n")
	return b.String()
}

// chartPaths are the paths the chart draws as ratios to frp tcp, and
// their colours.
var chartPaths = []struct{ path, color string }{{pathCLI, "#2b6cb0"}, {pathFrpSTCP, "#c05621"}, {pathChisel, "#718096"}}

// svg draws the ratios to frp tcp as horizontal bars, oriented so that
// longer is better.
func (r *peersReport) svg() string {
	type bar struct {
		label string
		v     float64
		color string
	}
	var groups [][]bar
	var names []string
	maxV := 2.0
	for i, f := range peerFigures {
		var g []bar
		for _, x := range chartPaths {
			q := r.ratio(x.path, i)
			if math.IsNaN(q) || q == 0 {
				continue
			}
			if !f.higher {
				q = 1 / q
			}
			maxV = max(maxV, q)
			g = append(g, bar{peerName[x.path], q, x.color})
		}
		groups = append(groups, g)
		names = append(names, f.name)
	}
	maxV = math.Ceil(maxV*2) / 2
	const (
		left, width, rowH, barH, top = 330, 420, 60, 16, 40
	)
	H := top + rowH*len(groups) + 40
	W := left + width + 80
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="10" y="18" font-size="14" font-weight="bold">Ratio to frp tcp proxy (default), same run; right of 1× is better</text>` + "\n")
	x := func(v float64) float64 { return left + v/maxV*width }
	for i, g := range groups {
		y := top + i*rowH
		label := names[i]
		if len(label) > 52 {
			label = label[:49] + "…"
		}
		p(`<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left-8, y+barH+4, xmlEscape(label))
		for j, br := range g {
			by := y + j*(barH+2)
			p(`<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", left, by, x(br.v)-left, barH, br.color)
			p(`<text x="%.1f" y="%d">%.2f×</text>`+"\n", x(br.v)+4, by+barH-4, br.v)
		}
	}
	p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black" stroke-dasharray="4 3"/>`+"\n", x(1), top-6, x(1), top+rowH*len(groups))
	p(`<text x="%.1f" y="%d" text-anchor="middle">1× (frp tcp)</text>`+"\n", x(1), top+rowH*len(groups)+14)
	ly := H - 12
	for k, x := range chartPaths {
		lx := left + 150*k
		p(`<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n", lx, ly-10, x.color, lx+16, ly, xmlEscape(peerName[x.path]))
	}
	p("</svg>\n")
	return b.String()
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// shapeHeader is the header of the shape table (shapeSection).
var shapeHeader = []string{"figure (medians)", "bare 2 hops (frp tcp's shape)", "bare 3 hops (the CLI's shape)", "bare 3 hops, blind middle", "bare 3 ÷ bare 2", "frp tcp ÷ bare 2", "CLI ÷ bare 3", "CLI target ÷ bare 3", "CLI target ÷ bare 3 blind"}

// shapeRows are the figures the bare chains measure: each chain's
// median, the CLI's shape against frp tcp's, each tunnel against the
// bare chain of its shape, and the CLI path's target (a multiple of frp
// tcp's figure) as a multiple of its own shape's bare chain and of the
// blind chain, the cheapest shape of the CLI path's processes. Nil if
// bare 2, bare 3 or frp tcp was not measured; the blind chain's cells
// are "–" if it was not.
func (r *peersReport) shapeRows() [][]string {
	b2, b3, frp, cli := r.med[pathBare2], r.med[pathBare3], r.med[pathFrpTCP], r.med[pathCLI]
	if b2 == nil || b3 == nil || frp == nil {
		return nil
	}
	blind := r.med[pathBare3Blind]
	q := func(a, b float64) string {
		if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f×", a/b)
	}
	var out [][]string
	for i, f := range peerFigures {
		if !f.bare {
			continue
		}
		c, bl := math.NaN(), math.NaN()
		if cli != nil {
			c = cli[i]
		}
		blindCell := "–"
		if blind != nil {
			bl = blind[i]
			blindCell = num(bl, f.dec) + " " + f.unit
		}
		target, targetBlind := "–", "–"
		if f.target != 0 {
			target = q(f.target*frp[i], b3[i])
			targetBlind = q(f.target*frp[i], bl)
		}
		out = append(out, []string{f.name,
			num(b2[i], f.dec) + " " + f.unit, num(b3[i], f.dec) + " " + f.unit, blindCell,
			q(b3[i], b2[i]), q(frp[i], b2[i]), q(c, b3[i]), target, targetBlind})
	}
	return out
}

// shapeSection is the report's section on the bare chains; "" if they
// were not measured.
func (r *peersReport) shapeSection() string {
	rows := r.shapeRows()
	if rows == nil {
		return ""
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("## What each shape costs before any tunnel's work\n\n")
	p("The same clients through bare chains of this binary's io.Copy hops over crypto/tls (Paths): frp tcp's shape (2 processes, 1 TLS leg) and the CLI path's (3 processes, 2 TLS legs), measured in the same repetitions. ")
	p("The blind chain has the CLI path's three processes and one TLS session from the first hop to the last, which the middle hop forwards without reading: the cheapest shape those processes could take with the client's leg encrypted (a relay that neither decrypts nor multiplexes, authorizes or counts). ")
	p("The last two columns are the CLI path's target (a multiple of frp tcp's figure) as a multiple of the bare chain of its own shape and of the blind chain: above 1× for throughput, or below 1× for round trips, the target asks the CLI path to beat io.Copy and crypto/tls in that shape, where every tunnel adds multiplexing, authorization and counting.\n\n")
	p("| %s |\n|%s\n", strings.Join(shapeHeader, " | "), strings.Repeat("---|", len(shapeHeader)))
	for _, row := range rows {
		p("| %s |\n", strings.Join(row, " | "))
	}
	p("\nFor round trips lower is better: a ratio below 1× there is faster.\n")
	return b.String()
}
