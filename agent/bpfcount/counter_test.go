package bpfcount_test

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/nanodems/connector/agent/bpfcount"
)

// openKernel opens a Counter in eBPF mode, or skips (not root) or fails
// (root under CI, where the kernel mode must work) with the reason.
func openKernel(t *testing.T) (*bpfcount.Counter, *bytes.Buffer) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("eBPF counting needs root (or CAP_BPF and CAP_NET_ADMIN); running as uid", os.Geteuid())
	}
	var logs bytes.Buffer
	c := bpfcount.Open(slog.New(slog.NewTextHandler(&logs, nil)))
	if c.Mode() != bpfcount.ModeEBPF {
		if os.Getenv("CI") != "" {
			t.Fatalf("root, yet counting fell back to userspace: %s", c.Reason())
		}
		t.Skipf("this kernel refuses the programs: %s", c.Reason())
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return c, &logs
}

// A socket tracked before it connects has every payload byte counted,
// each way, including a banner the peer sends on accept; the peer's own
// socket, not tracked, is not counted; once forgotten, the entry is gone.
func TestKernelCountsTrackedSocket(t *testing.T) {
	c, logs := openKernel(t)
	if !strings.Contains(logs.String(), "counting=ebpf") {
		t.Errorf("the log does not say the mode:\n%s", logs)
	}
	const banner, up, down = 1000, 8<<20 + 7, 3<<20 + 11

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		peer bpfcount.Key
		got  int64
		err  error
	}
	res := make(chan result, 1)
	go func() {
		s, err := ln.Accept()
		if err != nil {
			res <- result{err: err}
			return
		}
		defer s.Close()
		peer, _ := bpfcount.Cookie(s.(*net.TCPConn))
		if _, err := s.Write(make([]byte, banner)); err != nil {
			res <- result{err: err}
			return
		}
		got, err := io.Copy(io.Discard, s)
		if err == nil {
			_, err = s.Write(make([]byte, down))
		}
		res <- result{peer: peer, got: got, err: err}
	}()

	var key bpfcount.Key
	var trackErr error
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		key, trackErr = c.Track(rc)
		return nil
	}}
	conn, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if trackErr != nil {
		t.Fatal(trackErr)
	}
	if k, _ := bpfcount.Cookie(conn.(*net.TCPConn)); k != key {
		t.Fatalf("tracked cookie %d, connected socket's %d", key, k)
	}
	if _, err := conn.Write(make([]byte, up)); err != nil {
		t.Fatal(err)
	}
	conn.(*net.TCPConn).CloseWrite()
	back, err := io.Copy(io.Discard, conn)
	if err != nil {
		t.Fatal(err)
	}
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.got != up || back != banner+down {
		t.Fatalf("transfer: peer got %d of %d, we got %d of %d", r.got, up, back, banner+down)
	}
	in, out, err := c.Read(key)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel: in %d out %d; application: in %d out %d", in, out, back, up)
	exact(t, "in", in, uint64(back))
	exact(t, "out", out, uint64(up))
	if _, _, err := c.Read(r.peer); err == nil {
		t.Error("the peer's socket, never tracked, has an entry")
	}
	all := map[bpfcount.Key]bpfcount.Counts{}
	if err := c.ReadAll(all); err != nil {
		t.Fatal(err)
	}
	if got := all[key]; got.In != in || got.Out != out {
		t.Errorf("ReadAll: in %d out %d, Read: in %d out %d", got.In, got.Out, in, out)
	}
	if _, ok := all[r.peer]; ok {
		t.Error("ReadAll lists the peer's socket, never tracked")
	}
	c.Forget(key)
	if _, _, err := c.Read(key); err == nil {
		t.Error("a forgotten socket still has an entry")
	}
}

// ReadAll returns every tracked socket, across more than one batch of
// its lookups (1,024), and none once forgotten.
func TestKernelReadAll(t *testing.T) {
	c, _ := openKernel(t)
	keys := trackSockets(t, c, 1500)
	all := map[bpfcount.Key]bpfcount.Counts{}
	if err := c.ReadAll(all); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if _, ok := all[k]; !ok {
			t.Fatalf("ReadAll returned %d entries and not tracked socket %d", len(all), k)
		}
	}
	for _, k := range keys {
		c.Forget(k)
	}
	clear(all)
	if err := c.ReadAll(all); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if _, ok := all[k]; ok {
			t.Fatalf("ReadAll still returns forgotten socket %d", k)
		}
	}
}

// trackSockets tracks n loopback UDP sockets, closed at the end of the
// test: a socket has a cookie and an entry whether or not it connects.
func trackSockets(tb testing.TB, c *bpfcount.Counter, n int) []bpfcount.Key {
	tb.Helper()
	keys := make([]bpfcount.Key, 0, n)
	for range n {
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { u.Close() })
		k, err := c.TrackConn(u)
		if err != nil {
			tb.Fatal(err)
		}
		keys = append(keys, k)
	}
	return keys
}

// exact fails unless the kernel counted exactly the bytes the
// application moved: every byte, each once.
func exact(t *testing.T, what string, got, want uint64) {
	t.Helper()
	if got != want {
		t.Errorf("%s: kernel counted %d bytes, the application moved %d", what, got, want)
	}
}

// A Counter in userspace mode tracks nothing and says so; a nil one is
// the same.
func TestUserspaceModeTracksNothing(t *testing.T) {
	var logs bytes.Buffer
	for _, c := range []*bpfcount.Counter{bpfcount.Userspace(slog.New(slog.NewTextHandler(&logs, nil)), "test"), nil} {
		if c.Mode() != bpfcount.ModeUserspace {
			t.Errorf("mode %q", c.Mode())
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		conn, err := net.Dial("tcp", ln.Addr().String())
		ln.Close()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.TrackConn(conn.(*net.TCPConn)); !errors.Is(err, bpfcount.ErrUserspace) {
			t.Errorf("track in userspace mode: %v", err)
		}
		conn.Close()
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	}
	if !strings.Contains(logs.String(), `msg="counting tunnel bytes in userspace" counting=userspace reason=test`) {
		t.Errorf("log:\n%s", logs.String())
	}
}

// BenchmarkSweep1000: the agent's rate sweep over 1,000 tunnels, as one
// ReadAll or as a Read per socket.
func BenchmarkSweep1000(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	c := bpfcount.Open(slog.New(slog.DiscardHandler))
	if c.Mode() != bpfcount.ModeEBPF {
		b.Skip(c.Reason())
	}
	defer c.Close()
	keys := trackSockets(b, c, 1000)
	b.Run("ReadAll", func(b *testing.B) {
		all := map[bpfcount.Key]bpfcount.Counts{}
		for b.Loop() {
			clear(all)
			if err := c.ReadAll(all); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Read", func(b *testing.B) {
		for b.Loop() {
			for _, k := range keys {
				if _, _, err := c.Read(k); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
