package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/nanodems/connector/cli"
)

// The bridge figure (-bridge): the installation of the main run, with a
// second relay process on the same data directory and database; the same
// WebSocket tunnel to the same echo target is measured through the relay
// that holds the agent and through the other one, whose Dial bridges to it
// over BridgeTunnel (gRPC, mTLS under the internal CA), in the same run.
// It writes docs/perf-ha.md.

const pathBridge = "ws-bridge" // WebSocket to relay 2, BridgeTunnel to relay 1, smux to the agent

// startBridgeRelay starts relay 2 beside the installation's relay.
func (e *env) startBridgeRelay(ctx context.Context) (*proc, string, error) {
	apiAddr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	agentAddr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	peerAddr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	args := []string{"serve", "--data-dir", filepath.Join(e.tmp, "relay"), "--api-addr", apiAddr, "--agent-addr", agentAddr,
		"--peer-addr", peerAddr, "--rtsp-addr", "off", "--log-level", "warn", "--node", "perf-relay-2", "--max-conns-per-addr", "-1"}
	p, err := children.start(e.tmp, "relay-2", filepath.Join(e.bin, "nanodems-relay"), args, e.cfg.serverEnv, "--ca-pin ")
	if err != nil {
		return nil, "", err
	}
	if _, err := p.waitLine(ctx, "--ca-pin ", 30*time.Second); err != nil {
		return nil, "", err
	}
	return p, "https://" + apiAddr, nil
}

// bridgeFigures are the two paths' figures.
type bridgeFigures struct {
	tp1, tp8 tpResult
	rtt      rttResult
	opens    openResult
}

func runBridge(ctx context.Context, c *config, e *env) error {
	started := time.Now()
	r2, url2, err := e.startBridgeRelay(ctx)
	if err != nil {
		return fmt.Errorf("relay 2: %w", err)
	}
	defer r2.stop(5 * time.Second)
	r := cli.Relay{URL: url2, Token: e.token, Pin: e.pin}
	e.dial[pathBridge] = func(ctx context.Context) (net.Conn, error) { return cli.DialTunnel(ctx, r, e.handle) }
	logf("relay 2 (pid %d) at %s bridges to the relay that holds the agent", r2.pid(), url2)

	p := &payload{pool: make([]byte, 16<<20+12345), chunk: c.chunk}
	rand.Read(p.pool)
	figs := map[string]*bridgeFigures{}
	paths := []string{pathWS, pathBridge}
	for _, path := range paths {
		figs[path] = &bridgeFigures{}
	}
	mib := int64(c.totalMiB)
	for rep := range c.repeats {
		// Interleaved, so that drift of the machine hits both paths alike.
		for _, path := range paths {
			f := figs[path]
			for _, n := range []int{1, 8} {
				per := mib << 20 / int64(n)
				sums := make([][32]byte, n)
				for i := range sums {
					sums[i] = p.sum(i, per)
				}
				res, err := throughput(ctx, e.dial[path], n, per, p, sums, nopMeter{})
				if err != nil {
					return fmt.Errorf("%s throughput x%d: %w", path, n, err)
				}
				logf("%s: %d tunnel(s), %d MiB: %.0f MB/s (run %d)", path, n, mib, res.MBps(), rep+1)
				best := &f.tp1
				if n == 8 {
					best = &f.tp8
				}
				if rep == 0 || res.MBps() > best.MBps() {
					*best = res // the best of the repeats: the capacity, not the noise
				}
			}
		}
	}
	for _, path := range paths {
		f := figs[path]
		if f.rtt, err = pingPong(ctx, e.dial[path], 64, 200, c.rttSamples); err != nil {
			return fmt.Errorf("%s round trip: %w", path, err)
		}
		slices.Sort(f.rtt.Samples)
		if f.opens, err = opens(ctx, e.dial[path], c.openPar, c.openDur, 1<<30, nopMeter{}); err != nil {
			return fmt.Errorf("%s opens: %w", path, err)
		}
		slices.Sort(f.opens.Latency.Samples)
		logf("%s: rtt p50 %v, opens %.0f/s", path, f.rtt.pct(50), f.opens.perSec())
	}
	md := bridgeReport(c, figs[pathWS], figs[pathBridge], time.Since(started))
	fmt.Print(md)
	if c.write {
		out := filepath.Join(c.outDir, "perf-ha.md")
		if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
			return err
		}
		logf("wrote %s", out)
	}
	return nil
}

func bridgeReport(c *config, local, bridged *bridgeFigures, elapsed time.Duration) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	ratio := func(x, y float64) string {
		if y == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", x/y)
	}
	w("# Performance: a tunnel through a bridge hop\n\n")
	w("Written by `go run ./perf -bridge` (perf/bridge.go); %s, GOMAXPROCS %d, %d MiB per throughput run, best of %d, %d round trips, opens for %v with %d openers; the run took %v.\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.GOMAXPROCS(0), c.totalMiB, c.repeats, c.rttSamples, c.openDur, c.openPar, elapsed.Round(time.Second))
	w("Both paths are a WebSocket tunnel (`cli.DialTunnel`) to the same echo target through the same agent, in the same run, on one machine (every process on 127.0.0.1, sharing its cores):\n\n")
	w("- **local**: WebSocket/TLS to relay 1, which holds the agent; smux/TLS to the agent; TCP to echo.\n")
	w("- **bridged**: WebSocket/TLS to relay 2; BridgeTunnel (gRPC stream on one pooled HTTP/2 mTLS connection) to relay 1; smux/TLS to the agent; TCP to echo.\n\n")
	w("| figure | local | bridged | bridged / local |\n| --- | --- | --- | --- |\n")
	w("| throughput, 1 tunnel (MB/s, echoed, SHA-256 checked) | %.0f | %.0f | %s |\n", local.tp1.MBps(), bridged.tp1.MBps(), ratio(bridged.tp1.MBps(), local.tp1.MBps()))
	w("| throughput, 8 tunnels (MB/s, echoed, SHA-256 checked) | %.0f | %.0f | %s |\n", local.tp8.MBps(), bridged.tp8.MBps(), ratio(bridged.tp8.MBps(), local.tp8.MBps()))
	w("| 64 B round trip p50 (µs) | %.0f | %.0f | +%.0f µs |\n", us(local.rtt.pct(50)), us(bridged.rtt.pct(50)), us(bridged.rtt.pct(50)-local.rtt.pct(50)))
	w("| 64 B round trip p99 (µs) | %.0f | %.0f | +%.0f µs |\n", us(local.rtt.pct(99)), us(bridged.rtt.pct(99)), us(bridged.rtt.pct(99)-local.rtt.pct(99)))
	w("| tunnel opens per second (open, 1 B round trip, close) | %.0f | %.0f | %s |\n", local.opens.perSec(), bridged.opens.perSec(), ratio(bridged.opens.perSec(), local.opens.perSec()))
	w("| open latency p50 (µs) | %.0f | %.0f | +%.0f µs |\n\n", us(local.opens.Latency.pct(50)), us(bridged.opens.Latency.pct(50)), us(bridged.opens.Latency.pct(50)-local.opens.Latency.pct(50)))
	return b.String()
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
