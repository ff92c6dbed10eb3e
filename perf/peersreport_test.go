package main

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMedianOf(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := medianOf(c.in); got != c.want {
			t.Errorf("medianOf(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	if !math.IsNaN(medianOf(nil)) {
		t.Error("medianOf(nil) is not NaN")
	}
	in := []float64{3, 1, 2}
	medianOf(in)
	if in[0] != 3 {
		t.Error("medianOf sorted its argument")
	}
}

// run builds a repetition with the given figures.
func fakeRun(mbps1, mbps8 float64, p50, p99 time.Duration, opens float64, rssMiB int64, cpu float64) peerRun {
	return peerRun{
		MBps: map[int]float64{1: mbps1, 8: mbps8, 64: mbps8},
		P50:  p50, P99: p99, Opens: opens,
		OpenCPU: map[string]float64{"a": cpu * 30, "b": cpu * 10},
		Load:    loadResult{RSS: map[string]int64{"a": rssMiB << 19, "b": rssMiB << 19}, CPU: map[string]float64{"a": cpu / 2, "b": cpu / 2}, P99: p99},
	}
}

func fig(name string) int {
	for i, f := range peerFigures {
		if f.name == name {
			return i
		}
	}
	panic(name)
}

// TestPeersRatiosAndTargets checks the medians over repetitions, the
// ratios to frp tcp, the direction of each target and the lead over frp
// stcp on a made-up run.
func TestPeersRatiosAndTargets(t *testing.T) {
	ms := time.Millisecond
	r := &peersReport{cfg: &config{repeats: 3}, runs: map[string][]peerRun{
		pathDirect: {fakeRun(1000, 2000, 30*time.Microsecond, 90*time.Microsecond, 9000, 0, 0)},
		// CLI: 1-stream median 300 (1.5× frp's 200), round trip p50
		// 0.5 ms (1.25× frp's 0.4: missed), RSS 80 MiB (0.8×: met).
		pathCLI: {
			fakeRun(290, 300, ms/2, ms, 1000, 80, 10),
			fakeRun(300, 310, ms/2, ms, 1000, 80, 10),
			fakeRun(900, 320, ms/2, ms, 1000, 80, 10),
		},
		pathFrpTCP:  {fakeRun(200, 300, 4*ms/10, ms, 500, 100, 10)},
		pathFrpSTCP: {fakeRun(100, 100, ms, 2*ms, 400, 200, 20)},
		pathChisel:  {fakeRun(250, 250, ms/5, ms, 800, 50, 5)},
	}}
	r.compute()
	tp1, p50, rss, cpu := fig("throughput, 1 stream"), fig("64 B round trip p50"), fig("RSS of all tunnel processes, 1,000 connections echoing 64 B every 100 ms"), fig("CPU of all tunnel processes over those 10 s")
	if got := r.med[pathCLI][tp1]; got != 300 {
		t.Fatalf("CLI 1-stream median %v, want 300", got)
	}
	if got := r.ratio(pathCLI, tp1); got != 1.5 {
		t.Errorf("CLI 1-stream ratio %v, want 1.5", got)
	}
	if got := r.ratio(pathCLI, p50); math.Abs(got-1.25) > 1e-9 {
		t.Errorf("CLI p50 ratio %v, want 1.25", got)
	}
	if got := r.med[pathCLI][rss]; got != 80 {
		t.Errorf("CLI RSS median %v MiB, want 80", got)
	}
	if !math.IsNaN(r.med[pathDirect][rss]) {
		t.Errorf("direct has an RSS figure: %v", r.med[pathDirect][rss])
	}
	rows := r.rows()
	want := map[int]string{tp1: "≥ 1.3×: met", p50: "≤ 0.8×: **missed**", rss: "≤ 0.8×: met", cpu: "≤ 1.0×: met"}
	for i, w := range want {
		if got := rows[i][colTarget]; got != w {
			t.Errorf("%s target cell %q, want %q", peerFigures[i].name, got, w)
		}
	}
	// Lead over stcp: throughput 300/100 = 3×; round trip 1 ms / 0.5 ms = 2×.
	if got := rows[tp1][colLead]; got != "3.00× (met)" {
		t.Errorf("1-stream lead over stcp %q", got)
	}
	if got := rows[p50][colLead]; got != "2.00× (met)" {
		t.Errorf("p50 lead over stcp %q", got)
	}
	if got := rows[rss][colLead]; got != "2.50× (met)" {
		t.Errorf("RSS lead over stcp %q", got)
	}
	if got := rows[cpu][colLead]; got != "2.00× (met)" {
		t.Errorf("CPU lead over stcp %q", got)
	}
	// CPU per connection opened: CLI 400 µs, frp tcp 400, stcp 800; no
	// target, a lead of 2× over stcp, no figure for direct.
	opc := fig("CPU of all tunnel processes per connection opened")
	if got := rows[opc][2]; got != "400 µs (1.00×)" {
		t.Errorf("CLI CPU per connection cell %q", got)
	}
	if rows[opc][1] != "–" || rows[opc][colTarget] != "" || rows[opc][colLead] != "2.00× (met)" {
		t.Errorf("CPU per connection row %q", rows[opc])
	}
	if got := r.openParts(pathCLI); got != "a 300, b 100 µs" {
		t.Errorf("CLI CPU per connection parts %q", got)
	}
	if got := rows[tp1][2]; got != "300 MB/s (1.50×)" {
		t.Errorf("CLI 1-stream cell %q", got)
	}
	if got := rows[tp1][3]; got != "200 MB/s" {
		t.Errorf("frp tcp cell %q: the base carries no ratio", got)
	}
	md := r.markdown()
	for _, s := range []string{"| nanodems CLI |", "perf-peers.svg", "shared", "≤ 0.8×: **missed**"} {
		if !strings.Contains(md, s) {
			t.Errorf("markdown lacks %q", s)
		}
	}
	// chisel has a column of its own, with ratios to frp tcp, and no
	// target or lead of its own: 250 MB/s ÷ 200 = 1.25×.
	if got := rows[tp1][1+slices.Index(peerColumns, pathChisel)]; got != "250 MB/s (1.25×)" {
		t.Errorf("chisel 1-stream cell %q", got)
	}
	if got := rows[tp1][colTarget]; got != "≥ 1.3×: met" {
		t.Errorf("the target column moved: %q", got)
	}
	svg := r.svg()
	// The p50 bar of the CLI is oriented: frp 0.4 ms ÷ CLI 0.5 ms = 0.80×;
	// chisel's is 0.4 ÷ 0.2 = 2.00×, under its own legend.
	for _, want := range []string{"0.80×", "2.00×", "chisel (reverse forward)"} {
		if !strings.Contains(svg, want) || !strings.HasPrefix(svg, "<svg") {
			t.Errorf("svg lacks %q:\n%s", want, svg)
		}
	}
}

// A partial run (-paths) measures a subset of the paths: every value stays
// under its own path's header, and a path left out shows "–".
func TestPeersSubsetColumns(t *testing.T) {
	ms := time.Millisecond
	all := map[string]peerRun{
		pathDirect:  fakeRun(1000, 2000, 30*time.Microsecond, 90*time.Microsecond, 9000, 0, 0),
		pathCLI:     fakeRun(300, 300, ms/2, ms, 1000, 80, 10),
		pathFrpTCP:  fakeRun(200, 300, 4*ms/10, ms, 500, 100, 10),
		pathFrpSTCP: fakeRun(100, 100, ms, 2*ms, 400, 200, 20),
		pathChisel:  fakeRun(250, 250, ms/5, ms, 800, 50, 5),
	}
	want := map[string]string{pathDirect: "1,000 MB/s", pathCLI: "300 MB/s", pathFrpTCP: "200 MB/s", pathFrpSTCP: "100 MB/s", pathChisel: "250 MB/s"}
	tp1 := fig("throughput, 1 stream")
	for _, subset := range [][]string{{pathCLI, pathFrpTCP}, {pathDirect, pathCLI, pathFrpTCP}, {pathCLI, pathFrpTCP, pathChisel}} {
		t.Run(strings.Join(subset, ","), func(t *testing.T) {
			old := peerPaths
			t.Cleanup(func() { peerPaths = old })
			peerPaths = subset
			r := &peersReport{cfg: &config{repeats: 1}, runs: map[string][]peerRun{}}
			for _, p := range subset {
				r.runs[p] = []peerRun{all[p]}
			}
			r.compute()
			rows := r.rows()
			for _, row := range rows {
				if len(row) != len(peerHeader) {
					t.Fatalf("row %q has %d cells for %d headers", row[0], len(row), len(peerHeader))
				}
			}
			for j, p := range peerColumns {
				cell := rows[tp1][j+1]
				if !slices.Contains(subset, p) {
					if cell != "–" {
						t.Errorf("%s, not measured: %q under %q", p, cell, peerHeader[j+1])
					}
					continue
				}
				if !strings.HasPrefix(cell, want[p]) {
					t.Errorf("%s: %q under %q, want %s", p, cell, peerHeader[j+1], want[p])
				}
			}
			// Lead over stcp: none without stcp.
			if !slices.Contains(subset, pathFrpSTCP) && rows[tp1][colLead] != "–" {
				t.Errorf("lead over stcp without stcp: %q", rows[tp1][colLead])
			}
			tb := r.table()
			if !strings.Contains(tb, "nanodems CLI") {
				t.Errorf("table lacks its header:\n%s", tb)
			}
			if md := r.markdown(); !strings.Contains(md, "| nanodems CLI |") {
				t.Error("markdown lacks its header")
			}
		})
	}
}
