package relay_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/demo/camera"
	"github.com/nanodems/connector/relay"
)

// benchEcho pushes b.N chunks of 64 KiB through c to an echo target while
// reading them back; b.SetBytes makes the MB/s one direction's rate.
func benchEcho(b *testing.B, c net.Conn) {
	chunk := make([]byte, 64<<10)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	b.ResetTimer()
	done := make(chan error, 1)
	go func() {
		_, err := io.CopyN(io.Discard, c, int64(b.N)*int64(len(chunk)))
		done <- err
	}()
	for range b.N {
		if _, err := c.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

func benchDemo(b *testing.B) *demo.Demo {
	d, err := demo.Start(context.Background(), demo.Options{DataDir: b.TempDir(), Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(d.Close)
	return d
}

// BenchmarkDirectTCP is the baseline: the same echo target over loopback.
func BenchmarkDirectTCP(b *testing.B) {
	d := benchDemo(b)
	c, err := net.Dial("tcp", d.Echo.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	benchEcho(b, c)
}

// BenchmarkTunnelWebSocket: client → wss → relay → TLS+smux → agent → echo.
func BenchmarkTunnelWebSocket(b *testing.B) {
	d := benchDemo(b)
	c, err := cli.DialTunnel(context.Background(), operator(d), d.Info.EchoHandle)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	benchEcho(b, c)
}

// BenchmarkTunnelOpen opens a tunnel, moves one byte each way, closes it.
func BenchmarkTunnelOpen(b *testing.B) {
	d := benchDemo(b)
	buf := make([]byte, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c, err := cli.DialTunnel(context.Background(), operator(d), d.Info.EchoHandle)
		if err != nil {
			b.Fatal(err)
		}
		c.Write(buf)
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// benchPage fetches url b.N times from 4 concurrent clients and reports
// requests/s and latency percentiles: the browser proxy's per-request cost.
func benchPage(b *testing.B, c *http.Client, url string) {
	const workers = 4
	lat := make([][]time.Duration, workers)
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				resp, err := c.Get(url)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	if len(all) == 0 {
		return
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkPageDirect fetches the camera's small login page directly.
func BenchmarkPageDirect(b *testing.B) {
	cam := camera.New(camera.Options{})
	srv, err := cam.Start("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	benchPage(b, c, srv.URL+"/doc/page/login.asp")
}

// BenchmarkPageProxy fetches the same page through /c/{handle}/: HTTPS to
// the relay, session check, tunnel to the agent, camera.
func BenchmarkPageProxy(b *testing.B) {
	d := benchDemo(b)
	jar, _ := cookiejar.New(nil)
	tr := operator(d).HTTPClient().Transport.(*http.Transport)
	tr.MaxIdleConnsPerHost = 8
	c := &http.Client{Jar: jar, Transport: tr}
	resp, err := c.Get(d.Info.RelayURL + "/login")
	if err != nil {
		b.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfRe.FindSubmatch(page)
	resp, err = c.PostForm(d.Info.RelayURL+"/login", url.Values{"csrf": {string(m[1])}, "email": {demo.OperatorEmail}, "password": {d.Info.UserPassword}})
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	benchPage(b, c, d.Info.BrowserURL+"doc/page/login.asp")
}

// BenchmarkHeadOfLine measures 64-byte round trips on one tunnel while a
// bulk transfer runs on another tunnel of the same agent: with the bulk
// tunnel on the shared session, and moved to a dedicated connection.
func BenchmarkHeadOfLine(b *testing.B) {
	for _, mode := range []string{"idle", "bulk-shared", "bulk-dedicated"} {
		b.Run(mode, func(b *testing.B) {
			d := benchDemo(b)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if mode != "idle" {
				dial := cli.DialTunnel
				if mode == "bulk-dedicated" {
					dial = cli.DialDedicated
				}
				bulk, err := dial(ctx, operator(d), d.Info.EchoHandle)
				if err != nil {
					b.Fatal(err)
				}
				defer bulk.Close()
				go io.Copy(io.Discard, bulk)
				go func() {
					chunk := make([]byte, 64<<10)
					for ctx.Err() == nil {
						if _, err := bulk.Write(chunk); err != nil {
							return
						}
					}
				}()
				time.Sleep(300 * time.Millisecond) // deliberate: let it reach full rate
			}
			c, err := cli.DialTunnel(ctx, operator(d), d.Info.EchoHandle)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			msg := make([]byte, 64)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, msg); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// BenchmarkBridgeWindows: one tunnel's echo throughput through a bridge
// hop (relay 2 to the agent on relay 1, in this process) with gRPC's
// default flow control and with the bridge's fixed windows, beside the
// same tunnel on relay 1: what chose bridgeStreamWindow.
func BenchmarkBridgeWindows(b *testing.B) {
	for _, tc := range []struct {
		name         string
		stream, conn int32
		bridged      bool
	}{
		{"local", 0, 0, false},
		{"bridged-grpc-default", 0, 0, true},
		{"bridged-1MiB", 1 << 20, 4 << 20, true},
		{"bridged-4MiB", 4 << 20, 16 << 20, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			defer relay.SetBridgeWindows(tc.stream, tc.conn)()
			f := startFleet(b, 2)
			s := f.relays[0]
			if tc.bridged {
				s = f.relays[1]
			}
			c, err := s.Dial(context.Background(), relay.Principal{Admin: true, Actor: "bench"}, f.d.Info.EchoHandle, relay.DialOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			benchEcho(b, c)
		})
	}
}
