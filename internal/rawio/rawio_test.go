//go:build unix

package rawio_test

import (
	"bytes"
	"net"
	"syscall"
	"testing"

	"github.com/nanodems/connector/internal/rawio"
	"github.com/nanodems/connector/internal/testnet"
)

// Read and Write move bytes on a non-blocking TCP socket as read(2) and
// write(2) do: EAGAIN when there is nothing to read or no room, 0 at the
// end of the stream, an errno when the socket failed.
func TestReadWrite(t *testing.T) {
	a, b := testnet.TCPPair(t)
	fdOf := func(c *net.TCPConn) int {
		rc, err := c.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var fd int
		rc.Control(func(f uintptr) { fd = int(f) })
		return fd
	}
	fa, fb := fdOf(a), fdOf(b)
	buf := make([]byte, 64<<10)
	if _, err := rawio.Read(fb, buf, false); err != syscall.EAGAIN {
		t.Fatalf("read of an empty socket: %v, want EAGAIN", err)
	}
	msg := []byte("hello, device")
	if n, err := rawio.Write(fa, msg); n != len(msg) || err != nil {
		t.Fatalf("write: %d, %v", n, err)
	}
	var got []byte
	for len(got) < len(msg) {
		n, err := rawio.Read(fb, buf, false)
		if err == syscall.EAGAIN {
			continue // on its way through loopback
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("read %q, want %q", got, msg)
	}
	// A peer that never reads: writes fill the socket, then EAGAIN; the
	// first write is a large one (through package syscall), the rest are
	// small (raw).
	total := 0
	for i := 0; ; i++ {
		p := buf[:4<<10]
		if i == 0 {
			p = buf[:rawio.MaxRaw+1]
		}
		n, err := rawio.Write(fa, p)
		if err == syscall.EAGAIN {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		total += n
		if total > 256<<20 {
			t.Fatal("256 MiB written to a peer that never reads, and no EAGAIN")
		}
	}
	if total == 0 {
		t.Fatal("nothing written before EAGAIN")
	}
	a.Close()
	// The peer reads what was queued, then 0: the end of the stream; its
	// reads after the first are bulk ones (through package syscall).
	for read := 0; ; {
		n, err := rawio.Read(fb, buf, read > 0)
		if err == syscall.EAGAIN {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			if read != total {
				t.Fatalf("end of stream after %d bytes, %d were written", read, total)
			}
			break
		}
		read += n
	}
	if _, err := rawio.Write(fb, msg); err == nil {
		if _, err = rawio.Write(fb, msg); err == nil {
			t.Error("writes to a socket whose peer closed keep succeeding")
		}
	}
}
