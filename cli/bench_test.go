package cli_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nanodems/connector/cli"
)

// The CLI tunnel's figures (docs/perf-cli.md): the same four measurements
// through the OS listener (way a), through the SOCKS5 proxy (way b), and
// straight to the echo target over loopback TCP, in one run; DialPlan and
// the per-connection raw tunnel for comparison:
//
//	go test -run '^$' -bench . -benchtime 2s ./cli/
//
// throughput-1conn and throughput-8conns push 64 KiB chunks through
// echoing connections (MB/s is one direction), rtt-64B is one 64-byte
// round trip at a time (p50/p99), connect opens a connection, echoes one
// byte and closes it (connections/s, one at a time).

type dialFunc func() (net.Conn, error)

// benchDialers are the echo target reached five ways.
type benchDialers struct {
	direct   dialFunc // loopback TCP straight to the echo target
	listener dialFunc // way a: the OS listener on 127.0.0.2
	socks    dialFunc // way b: SOCKS5 (domain name, as curl --socks5-hostname)
	dialPlan dialFunc // Tunnel.DialPlan: the mux without a local socket (library, netstack)
	raw      dialFunc // one WebSocket per connection (/api/cli/raw-tunnel), for comparison
}

// benchTunnel starts a demo and a CLI session with OS listeners and the
// proxy.
func benchTunnel(b *testing.B) benchDialers { return benchTunnelOn(b, cli.TransportAuto) }

// benchTunnelOn is benchTunnel with the mux connection on transport.
func benchTunnelOn(b *testing.B, transport string) benchDialers {
	d := startDemo(b)
	s := mint(b, d)
	r := cli.Relay{URL: d.Info.RelayURL, Token: s.Token, Pin: d.Info.CAPin}
	tun, err := cli.Open(context.Background(), cli.Options{
		Relay:     r,
		Socks:     "127.0.0.1:0",
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Transport: transport,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tun.Close() })
	echo := d.Echo.Addr().Port
	proxy := tun.ProxyAddr().String()
	return benchDialers{
		direct:   func() (net.Conn, error) { return net.Dial("tcp", d.Echo.Addr().String()) },
		listener: func() (net.Conn, error) { return net.Dial("tcp", fmt.Sprintf("127.0.0.2:%d", echo)) },
		socks:    func() (net.Conn, error) { return socks5(proxy, "127.0.0.2", echo, true) },
		dialPlan: func() (net.Conn, error) { return tun.DialPlan(context.Background(), "127.0.0.2", uint16(echo)) },
		raw:      func() (net.Conn, error) { return cli.DialRawTunnel(context.Background(), r, "127.0.0.2", uint16(echo)) },
	}
}

func BenchmarkDirect(b *testing.B)       { runBenches(b, benchTunnel(b).direct) }
func BenchmarkCLIListener(b *testing.B)  { runBenches(b, benchTunnel(b).listener) }
func BenchmarkCLISocks(b *testing.B)     { runBenches(b, benchTunnel(b).socks) }
func BenchmarkCLIDialPlan(b *testing.B)  { runBenches(b, benchTunnel(b).dialPlan) }
func BenchmarkCLIRawTunnel(b *testing.B) { runBenches(b, benchTunnel(b).raw) }

// BenchmarkCLIDialPlanWS is BenchmarkCLIDialPlan with the mux connection on
// the WebSocket rather than the raw transport: the raw transport's
// before and after in one process.
func BenchmarkCLIDialPlanWS(b *testing.B) { runBenches(b, benchTunnelOn(b, cli.TransportWS).dialPlan) }

func runBenches(b *testing.B, dial dialFunc) {
	b.Run("throughput-1conn", func(b *testing.B) { benchThroughput(b, dial, 1) })
	b.Run("throughput-8conns", func(b *testing.B) { benchThroughput(b, dial, 8) })
	b.Run("rtt-64B", func(b *testing.B) { benchRTT(b, dial) })
	b.Run("connect", func(b *testing.B) { benchConnect(b, dial) })
}

// benchThroughput spreads b.N chunks of 64 KiB over conns echoing
// connections, each written and read back concurrently.
func benchThroughput(b *testing.B, dial dialFunc, conns int) {
	const chunk = 64 << 10
	cs := make([]net.Conn, conns)
	for i := range cs {
		c, err := dial()
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		cs[i] = c
	}
	buf := make([]byte, chunk)
	b.SetBytes(chunk)
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for i, c := range cs {
		n := b.N / conns
		if i < b.N%conns {
			n++
		}
		wg.Go(func() {
			done := make(chan error, 1)
			go func() {
				_, err := io.CopyN(io.Discard, c, int64(n)*chunk)
				done <- err
			}()
			for range n {
				if _, err := c.Write(buf); err != nil {
					b.Error(err)
					break
				}
			}
			if err := <-done; err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
}

// benchRTT times 64-byte round trips on one connection.
func benchRTT(b *testing.B, dial dialFunc) {
	c, err := dial()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msg, got := make([]byte, 64), make([]byte, 64)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, got); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// benchConnect opens a connection, echoes one byte, closes; one at a time.
func benchConnect(b *testing.B, dial dialFunc) {
	one := []byte{'x'}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		t0 := time.Now()
		c, err := dial()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Write(one); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, one); err != nil {
			b.Fatal(err)
		}
		c.Close()
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "conns/s")
	reportLatency(b, lat)
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
}
