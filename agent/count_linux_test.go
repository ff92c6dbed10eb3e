package agent

import (
	"io"
	"log/slog"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/nanodems/connector/agent/bpfcount"
	"github.com/nanodems/connector/internal/testnet"
)

// settle keeps the key of the socket that connected and forgets every
// other attempt's: with one attempt without looking at the cookie, with
// two (one that never connected, as a failed address of a dial) by it.
// The kept key is the connection's cookie either way.
func TestSettleKeepsTheConnectedSocket(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("eBPF counting needs root; running as uid", os.Geteuid())
	}
	count := bpfcount.Open(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if count.Mode() != bpfcount.ModeEBPF {
		if os.Getenv("CI") != "" {
			t.Fatalf("root, yet counting fell back to userspace: %s", count.Reason())
		}
		t.Skipf("this kernel refuses the programs: %s", count.Reason())
	}
	defer count.Close()
	addr := testnet.Serve(t, func(net.Conn) {}).String()
	for _, attempts := range []int{1, 2} {
		dc := lanDialCount{count: count, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		var failed bpfcount.Key
		if attempts == 2 {
			failed = trackLostAttempt(t, &dc)
		}
		d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			dc.track(rc)
			return nil
		}}
		conn, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		got := dc.settle(conn)
		want, err := bpfcount.Cookie(conn.(*net.TCPConn))
		if err != nil {
			t.Fatal(err)
		}
		if got == 0 || got != want {
			t.Errorf("%d attempts: settle kept key %d, the connection's cookie is %d", attempts, got, want)
		}
		if _, _, err := count.Read(got); err != nil {
			t.Errorf("%d attempts: the kept key has no entry: %v", attempts, err)
		}
		if failed != 0 {
			if _, _, err := count.Read(failed); err == nil {
				t.Errorf("the attempt that did not connect still has an entry")
			}
		}
		count.Forget(got)
	}
	// A winner the kernel could not take (its Track failed: the map was
	// full) beside a tracked attempt that lost: nothing is kept, the copy
	// loop counts.
	{
		dc := lanDialCount{count: count, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		lost := trackLostAttempt(t, &dc)
		d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			dc.mu.Lock()
			dc.attempts++ // what track does when Track fails
			dc.mu.Unlock()
			return nil
		}}
		conn, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if k := dc.settle(conn); k != 0 {
			t.Errorf("an untracked winner: settle kept key %d (the lost attempt's is %d)", k, lost)
		}
		if _, _, err := count.Read(lost); err == nil {
			t.Error("the attempt that lost still has an entry")
		}
	}
	// A failed dial keeps nothing.
	dc := lanDialCount{count: count, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		dc.track(rc)
		return nil
	}}
	if _, err := d.Dial("tcp", "127.0.0.1:1"); err == nil {
		t.Skip("something listens on port 1")
	}
	if k := dc.settle(nil); k != 0 {
		t.Errorf("a failed dial kept key %d", k)
	}
	for _, k := range dc.keys {
		if _, _, err := count.Read(k); err == nil {
			t.Errorf("a failed dial's socket %d still has an entry", k)
		}
	}
}

// trackLostAttempt tracks, as an attempt of dc's dial that did not
// connect, a socket closed at the end of the test, and returns its key.
func trackLostAttempt(t *testing.T, dc *lanDialCount) bpfcount.Key {
	t.Helper()
	u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	rc, err := u.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	dc.track(rc)
	return dc.keys[len(dc.keys)-1]
}
