package udpbuf

import (
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func listen(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestSize: a socket gets the video buffer where the system allows it
// (rmem_max, or CAP_NET_ADMIN past it), and says what it got otherwise.
func TestSize(t *testing.T) {
	c := listen(t)
	for _, d := range []Dir{Receive, Send} {
		got, err := Size(c, d, Video)
		if err != nil {
			t.Fatal(err)
		}
		if got <= 0 || got > Video {
			t.Fatalf("%s buffer: got %d bytes for %d asked", d, got, Video)
		}
		t.Logf("%s buffer: asked %d, got %d", d, Video, got)
		sysctl := map[Dir]string{Receive: "rmem_max", Send: "wmem_max"}[d]
		if b, err := os.ReadFile("/proc/sys/net/core/" + sysctl); err == nil {
			if max, _ := strconv.Atoi(strings.TrimSpace(string(b))); max >= Video && got != Video {
				t.Fatalf("%s buffer: got %d of %d although %s is %d", d, got, Video, sysctl, max)
			}
		}
	}
}

// TestReaderCountsDrops: datagrams sent to a socket whose small buffer
// is full are dropped by the kernel, and the reader's count says how
// many: what was read plus what was dropped is what was sent.
func TestReaderCountsDrops(t *testing.T) {
	rx, tx := listen(t), listen(t)
	if err := rx.SetReadBuffer(4096); err != nil { // the kernel's floor, a few datagrams
		t.Fatal(err)
	}
	r := NewReader(rx)
	const sent = 200
	payload := make([]byte, 1000)
	for range sent {
		if _, err := tx.WriteToUDP(payload, rx.LocalAddr().(*net.UDPAddr)); err != nil {
			t.Fatal(err)
		}
	}
	// Loopback queues within the send call: what was not dropped is
	// there. Read it all, then send one datagram to the drained socket:
	// the kernel reports the count with the datagrams after a drop.
	read := 0
	buf := make([]byte, 2048)
	for {
		rx.SetReadDeadline(time.Now().Add(200 * time.Millisecond)) // ends the loop on an empty queue; no assertion on time
		n, _, err := r.ReadFrom(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == len(payload) {
			read++
		}
	}
	if _, err := tx.WriteToUDP([]byte("last"), rx.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Fatal(err)
	}
	rx.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, _, err := r.ReadFrom(buf); err != nil || string(buf[:n]) != "last" {
		t.Fatalf("reading the last datagram: %q, %v", buf[:n], err)
	}
	if r.Drops() == 0 {
		t.Fatalf("read %d of %d datagrams and counted no drop", read, sent)
	}
	if uint64(read)+r.Drops() != sent {
		t.Fatalf("read %d + dropped %d != sent %d", read, r.Drops(), sent)
	}
	t.Logf("read %d, dropped %d of %d", read, r.Drops(), sent)
}
