package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/internal/acceptloop"
	"github.com/nanodems/connector/relay/pki"
)

// The bridge figure (-bridge): the installation of the main run, with a
// second relay process on the same data directory and database; the same
// WebSocket tunnel to the same echo target is measured through the relay
// that holds the agent and through the other one, whose Dial bridges to it
// over the bridge (smux, mTLS under the internal CA; gRPC with -server-env NANODEMS_BRIDGE_TRANSPORT=grpc), in the same run.
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
		"--peer-addr", peerAddr, "--rtsp-addr", "off", "--rtsps-addr", "off", "--metrics-addr", "127.0.0.1:0", "--log-level", "warn", "--node", "perf-relay-2", "--max-conns-per-addr", "-1"}
	path := filepath.Join(e.bin, "nanodems-relay")
	if e.cfg.pprofMode {
		if e.relay2Debug, err = freeAddr(); err != nil {
			return nil, "", err
		}
		if path, err = os.Executable(); err != nil {
			return nil, "", err
		}
		args = append([]string{"-role", "relay", "-debug-addr", e.relay2Debug, "--"}, args[1:]...)
	}
	p, err := children.start(e.tmp, "relay-2", path, args, e.cfg.envFor("relay"), "--ca-pin ")
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
	// cpu and echoed are the CPU seconds of all processes and the bytes
	// echoed over all throughput runs of the path.
	cpu    float64
	echoed int64
}

// cpuPerMB is the CPU of all processes per MB echoed, in milliseconds.
func (f *bridgeFigures) cpuPerMB() float64 {
	if f.echoed == 0 {
		return 0
	}
	return f.cpu * 1e3 / (float64(f.echoed) / 1e6)
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
	fwd, fwdURL, fwdPin, err := e.startTLSHop(ctx)
	if err != nil {
		return fmt.Errorf("TLS forwarder: %w", err)
	}
	defer fwd.stop(5 * time.Second)
	rf := cli.Relay{URL: fwdURL, Token: e.token, Pin: fwdPin}
	e.dial[pathTLSHop] = func(ctx context.Context) (net.Conn, error) { return cli.DialTunnel(ctx, rf, e.handle) }

	p := &payload{pool: make([]byte, 16<<20+12345), chunk: c.chunk}
	rand.Read(p.pool)
	figs := map[string]*bridgeFigures{}
	paths := []string{pathWS, pathBridge, pathTLSHop}
	for _, path := range paths {
		figs[path] = &bridgeFigures{}
	}
	// -pprof: CPU profiles of both relays and the agent while the bridged
	// path runs, in its first throughput run and its round trips.
	bridgeProfile := func(what, name string) {
		if c.pprofMode {
			e.profileOf(ctx, what, name, []debugTarget{{"relay", e.relayDebug}, {"relay-2", e.relay2Debug}, {"agent", e.agentDebug}})
		}
	}
	pm := &procsMeter{ps: append(e.procs(), r2, fwd)}
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
				profiled := rep == 0 && path == pathBridge
				if profiled {
					bridgeProfile("start", fmt.Sprintf("bridge-throughput-%d", n))
				}
				res, err := throughput(ctx, e.dial[path], n, per, p, sums, pm)
				if profiled {
					bridgeProfile("stop", fmt.Sprintf("bridge-throughput-%d", n))
				}
				if err != nil {
					return fmt.Errorf("%s throughput x%d: %w", path, n, err)
				}
				f.cpu += res.CPU["all"]
				f.echoed += res.Bytes
				logf("%s: %d tunnel(s), %d MiB: %.0f MB/s, CPU of all processes %.2f s (run %d)", path, n, mib, res.MBps(), res.CPU["all"], rep+1)
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
		if path == pathBridge {
			bridgeProfile("start", "bridge-rtt")
		}
		f.rtt, err = pingPong(ctx, e.dial[path], 64, 200, c.rttSamples)
		if path == pathBridge {
			bridgeProfile("stop", "bridge-rtt")
		}
		if err != nil {
			return fmt.Errorf("%s round trip: %w", path, err)
		}
		slices.Sort(f.rtt.Samples)
		if f.opens, err = opens(ctx, e.dial[path], c.openPar, c.openDur, 1<<30, nopMeter{}); err != nil {
			return fmt.Errorf("%s opens: %w", path, err)
		}
		slices.Sort(f.opens.Latency.Samples)
		logf("%s: rtt p50 %v, opens %.0f/s", path, f.rtt.pct(50), f.opens.perSec())
	}
	md := bridgeReport(c, figs[pathWS], figs[pathBridge], figs[pathTLSHop], time.Since(started))
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

func bridgeReport(c *config, local, bridged, tlsHop *bridgeFigures, elapsed time.Duration) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	ratio := func(x, y float64) string {
		if y == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", x/y)
	}
	w("# Performance: a tunnel through a bridge hop\n\n")
	cmd := "go run ./perf -bridge"
	if c.quick {
		cmd += " -quick"
	}
	w("Written by `%s` (perf/bridge.go); %s, GOMAXPROCS %d, %d MiB per throughput run, best of %d, %d round trips, opens for %v with %d openers; the run took %v.\n\n",
		cmd, time.Now().UTC().Format("2006-01-02"), runtime.GOMAXPROCS(0), c.totalMiB, c.repeats, c.rttSamples, c.openDur, c.openPar, elapsed.Round(time.Second))
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		w("The machine was shared with other work: load average %s at the end of the run (1, 5 and 15 minutes). MB/s and round trips follow that load from run to run; the CPU per MB echoed much less. Medians of several runs, before and after a change of the bridge: docs/ha.md.\n\n", strings.Join(strings.Fields(string(load))[:3], ", "))
	}
	w("Three paths, each a WebSocket tunnel (`cli.DialTunnel`) to the same echo target through the same agent, measured in the same run, interleaved, on one machine (every process on 127.0.0.1, sharing its cores):\n\n")
	w("- **local**: WebSocket/TLS to relay 1, which holds the agent; smux/TLS to the agent; TCP to echo.\n")
	w("- **bridged**: WebSocket/TLS to relay 2 (same database and data directory); the bridge, an smux stream on one pooled mTLS connection (relay 2's NANODEMS_BRIDGE_TRANSPORT, if set, chooses gRPC instead), to relay 1; smux/TLS to the agent; TCP to echo.\n")
	w("- **one extra TLS leg** (the yardstick): WebSocket/TLS to a forwarder process that terminates TLS and forwards over a new TLS connection to relay 1; then as local. A process hop with one more TLS leg and nothing else.\n\n")
	w("| figure | local | bridged | one extra TLS leg | bridged / local | extra TLS leg / local |\n| --- | --- | --- | --- | --- | --- |\n")
	tp := func(name string, get func(*bridgeFigures) float64) {
		w("| %s | %.0f | %.0f | %.0f | %s | %s |\n", name, get(local), get(bridged), get(tlsHop), ratio(get(bridged), get(local)), ratio(get(tlsHop), get(local)))
	}
	tp("throughput, 1 tunnel (MB/s echoed, SHA-256 checked)", func(f *bridgeFigures) float64 { return f.tp1.MBps() })
	tp("throughput, 8 tunnels (MB/s echoed, SHA-256 checked)", func(f *bridgeFigures) float64 { return f.tp8.MBps() })
	w("| CPU of all processes per MB echoed (ms; all throughput runs) | %.1f | %.1f | %.1f | %s | %s |\n",
		local.cpuPerMB(), bridged.cpuPerMB(), tlsHop.cpuPerMB(), ratio(bridged.cpuPerMB(), local.cpuPerMB()), ratio(tlsHop.cpuPerMB(), local.cpuPerMB()))
	tp("tunnel opens per second (open, 1 B round trip, close)", func(f *bridgeFigures) float64 { return f.opens.perSec() })
	lat := func(name string, get func(*bridgeFigures) time.Duration) {
		w("| %s | %.0f | %.0f | %.0f | %+.0f µs | %+.0f µs |\n", name, us(get(local)), us(get(bridged)), us(get(tlsHop)), us(get(bridged)-get(local)), us(get(tlsHop)-get(local)))
	}
	lat("64 B round trip p50 (µs)", func(f *bridgeFigures) time.Duration { return f.rtt.pct(50) })
	lat("64 B round trip p99 (µs)", func(f *bridgeFigures) time.Duration { return f.rtt.pct(99) })
	lat("open latency p50 (µs)", func(f *bridgeFigures) time.Duration { return f.opens.Latency.pct(50) })
	w("\n")
	return b.String()
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

const pathTLSHop = "ws-tls-hop" // WebSocket to a TLS-terminating forwarder process, a new TLS connection on to relay 1

// serveTLSForward terminates TLS on LISTEN with a self-signed certificate
// (its pin printed as "pin sha256:…") and forwards each connection over a
// new TLS connection to TARGET, both ways with half-close: a process hop
// that adds exactly one TLS leg, what a bridge hop is held to.
func serveTLSForward(spec string) error {
	from, to, ok := strings.Cut(spec, ">")
	if !ok {
		return fmt.Errorf("want LISTEN>TARGET, got %q", spec)
	}
	dir, err := os.MkdirTemp("", "nanodems-perf-tlsfwd-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cert, err := pki.LoadOrCreateSelfSigned(filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), []string{"127.0.0.1"})
	if err != nil {
		return err
	}
	ln, err := tls.Listen("tcp", from, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "pin %s\nlistening %s\n", pki.Pin(cert.Leaf), ln.Addr())
	go acceptloop.Serve(context.Background(), ln, slog.Default(), func(c net.Conn) {
		go hop(c, func() (net.Conn, error) {
			return tls.Dial("tcp", to, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}) // our own relay on loopback
		})
	})
	waitSignal()
	return ln.Close()
}

// startTLSHop starts the TLS forwarder in front of relay 1's API.
func (e *env) startTLSHop(ctx context.Context) (*proc, string, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", "", err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, "", "", err
	}
	target := strings.TrimPrefix(e.apiURL, "https://")
	p, err := children.start(e.tmp, "tls-forward", self, []string{"-serve-tls-forward", addr + ">" + target}, nil, "listening", "pin ")
	if err != nil {
		return nil, "", "", err
	}
	line, err := p.waitLine(ctx, "pin ", 10*time.Second)
	if err != nil {
		return nil, "", "", err
	}
	if _, err := p.waitLine(ctx, "listening", 10*time.Second); err != nil {
		return nil, "", "", err
	}
	_, pin, _ := strings.Cut(line, "pin ")
	return p, "https://" + addr, strings.TrimSpace(pin), nil
}
