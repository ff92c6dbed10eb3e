//go:build linux

package netstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nanodems/connector/internal/pipe"
	"github.com/nanodems/connector/internal/testnet"
)

// BenchmarkPath compares, in one run, three ways a tool reaches the same
// device port (a loopback server standing in for the tunnel's far end):
//
//   - direct: the tool dials the server itself (kernel loopback only; the
//     ceiling).
//   - oslistener: the tool dials an OS listener of the CLI, which dials
//     the server and joins the two with pipe.Join: `nanodems-tunnel run`'s
//     listeners, the reference for the aim "netstack ≥ 50 % of it".
//   - netstack: the tool runs under Exec and dials 127.0.0.2:80, which
//     goes kernel → TUN → gVisor → Dialer → server, joined by pipe.Join:
//     `nanodems-tunnel exec`.
//
// The netstack client is this process, entering the tool's network
// namespace on one locked thread (setns), so root is needed.
//
//	sudo go test -run '^$' -bench BenchmarkPath -benchtime 2s ./netstack/
func BenchmarkPath(b *testing.B) {
	if os.Getuid() != 0 {
		b.Skip("entering the tool's namespace needs root")
	}
	svc := benchServer(b)
	paths := []struct {
		name string
		dial func() (net.Conn, error)
	}{
		{"direct", func() (net.Conn, error) { return net.Dial("tcp", svc) }},
		{"oslistener", osListenerPath(b, svc)},
		{"netstack", netstackPath(b, svc)},
	}
	for _, dir := range []string{"down", "up"} {
		for _, conns := range []int{1, 8} {
			for _, p := range paths {
				b.Run(fmt.Sprintf("throughput-%s/conns=%d/%s", dir, conns, p.name), func(b *testing.B) {
					benchThroughput(b, p.dial, dir, conns)
				})
			}
		}
	}
	for _, p := range paths {
		b.Run("rtt64/"+p.name, func(b *testing.B) { benchRTT(b, p.dial) })
	}
	for _, p := range paths {
		b.Run("connect/"+p.name, func(b *testing.B) { benchConnect(b, p.dial) })
	}
}

const benchChunk = 256 << 10

// benchServer is the device: the first byte of a connection picks 'e'
// (echo), 'd' (send forever: a camera's video) or 'u' (swallow until EOF,
// then answer one byte: an upload).
func benchServer(b *testing.B) string {
	return testnet.Serve(b, func(c net.Conn) {
		var mode [1]byte
		if _, err := io.ReadFull(c, mode[:]); err != nil {
			return
		}
		buf := make([]byte, benchChunk)
		switch mode[0] {
		case 'e':
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		case 'd':
			for {
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
		case 'u':
			for {
				if _, err := c.Read(buf); err != nil {
					break
				}
			}
			c.Write([]byte{1})
		}
	}).String()
}

func osListenerPath(b *testing.B, svc string) func() (net.Conn, error) {
	addr := testnet.Serve(b, func(c net.Conn) {
		up, err := net.Dial("tcp", svc)
		if err != nil {
			return
		}
		pipe.Join(c, up, nil, nil)
	}).String()
	return func() (net.Conn, error) { return net.Dial("tcp", addr) }
}

// netstackPath runs a tool that only waits, under Exec, and returns a dial
// function whose sockets are made inside the tool's network namespace.
func netstackPath(b *testing.B, svc string) func() (net.Conn, error) {
	r, w, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	pid := make(chan int, 1)
	opt := ExecOptions{
		Self:    testBinary(b),
		Stdin:   r,
		Env:     withTool(os.Environ(), "sleep"),
		started: func(p int) { pid <- p },
	}
	var d net.Dialer
	dial := func(ctx context.Context, ip string, port uint16) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", svc)
	}
	done := make(chan error, 1)
	go func() {
		_, err := Exec(context.Background(), dial, planOf("127.0.0.2:80"), []string{opt.Self}, opt)
		done <- err
	}()
	var p int
	select {
	case p = <-pid:
	case err := <-done:
		b.Fatalf("Exec: %v", err)
	}
	nsfd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", p), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	// One thread lives in the namespace and makes every socket there; a
	// socket stays in the namespace it was made in whichever thread uses
	// it later.
	type req struct{ c chan result }
	reqs := make(chan req)
	quit := make(chan struct{})
	var nsWG sync.WaitGroup
	nsWG.Add(1)
	go func() {
		defer nsWG.Done()
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
			for {
				select {
				case q := <-reqs:
					q.c <- result{nil, err}
				case <-quit:
					return
				}
			}
		}
		for {
			select {
			case q := <-reqs:
				c, err := net.Dial("tcp", "127.0.0.2:80")
				q.c <- result{c, err}
			case <-quit:
				return
			}
		}
	}()
	b.Cleanup(func() {
		close(quit)
		nsWG.Wait()
		unix.Close(nsfd)
		w.Close()
		if err := <-done; err != nil {
			b.Errorf("Exec: %v", err)
		}
		r.Close()
	})
	return func() (net.Conn, error) {
		q := req{make(chan result, 1)}
		reqs <- q
		res := <-q.c
		return res.c, res.err
	}
}

// cpuTime is the process's user+system CPU time so far, in ns. The
// kernel's work for both ends of every path (loopback, TUN, the tool's
// socket) runs in this process's syscalls, so it is counted too.
func cpuTime() int64 {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

type result struct {
	c   net.Conn
	err error
}

func benchThroughput(b *testing.B, dial func() (net.Conn, error), dir string, conns int) {
	cs := make([]net.Conn, conns)
	for i := range cs {
		c, err := dial()
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte(dir[:1])); err != nil {
			b.Fatal(err)
		}
		cs[i] = c
	}
	b.SetBytes(benchChunk)
	cpu0 := cpuTime()
	b.ResetTimer()
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i, c := range cs {
		share := b.N / conns
		if i < b.N%conns {
			share++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, benchChunk)
			total := int64(share) * benchChunk
			if dir == "down" {
				for total > 0 {
					n, err := c.Read(buf[:min(int64(len(buf)), total)])
					total -= int64(n)
					if err != nil {
						errs <- err
						return
					}
				}
				return
			}
			for ; total > 0; total -= benchChunk {
				if _, err := c.Write(buf); err != nil {
					errs <- err
					return
				}
			}
			c.(interface{ CloseWrite() error }).CloseWrite()
			if _, err := io.ReadFull(c, buf[:1]); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	// CPU per byte is the steadier figure on a shared machine: it does
	// not move when other work takes the cores.
	b.ReportMetric(float64(cpuTime()-cpu0)/1e3/(float64(b.N)*benchChunk/(1<<20)), "cpu-µs/MiB")
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

func benchRTT(b *testing.B, dial func() (net.Conn, error)) {
	c, err := dial()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, 64)
	msg[0] = 'e'
	if _, err := c.Write(msg[:1]); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	buf := make([]byte, 64)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
}

// benchConnect is a whole short connection per op: connect (through the
// Dialer for the proxied paths), one byte each way, close.
func benchConnect(b *testing.B, dial func() (net.Conn, error)) {
	start := time.Now()
	buf := []byte{'e', 1}
	for range b.N {
		c, err := dial()
		if err != nil {
			if errors.Is(err, unix.EADDRNOTAVAIL) || strings.Contains(err.Error(), "cannot assign") {
				b.Skipf("out of ports after %d connections", b.N)
			}
			b.Fatal(err)
		}
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[1:]); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "conns/s")
}
