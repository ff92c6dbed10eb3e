package cli_test

import (
	"errors"
	"io"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/internal/testnet"
	"go.uber.org/goleak"
)

// A listener connection's bytes leave before the relay's status: 64 MiB
// written from the first moment, half-closed, come back SHA-256 equal.
func TestEarlyBytesEcho64MiB(t *testing.T) {
	d := startDemo(t)
	s := mint(t, d)
	open(t, d, s.Token, nil)
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.2", strconv.Itoa(d.Echo.Addr().Port)))
	must(t, err)
	defer c.Close()
	must(t, testnet.RoundTrip(c, 64<<20))
}

// A refused target with early bytes: the client sees the tunnel end with
// no answer, the CLI logs the relay's reason as for a synchronous open,
// and no goroutine is left behind.
func TestEarlyBytesRefusedTarget(t *testing.T) {
	d := startDemo(t)
	s := mint(t, d)
	_, logs := open(t, d, s.Token, func(o *cli.Options) { o.Refresh = 100 * time.Millisecond })
	gone, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	port := gone.Addr().(*net.TCPAddr).Port
	gone.Close()
	_, addr := addDevice(t, d, port)
	logs.wait(t, "listening on "+addr)
	opts := goleak.IgnoreCurrent()

	// The tunnel opens on accept, so on a busy machine the relay's
	// refusal can reset the connection before the dialer's goroutine
	// reads the socket's state: connect then reports the reset, which
	// is the same end seen earlier.
	c, err := net.Dial("tcp", addr)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatal(err)
	}
	if err == nil {
		_, _ = c.Write([]byte("early bytes for a refused target"))
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, err := c.Read(make([]byte, 64))
		if n != 0 || err == nil || err == io.ErrNoProgress {
			t.Fatalf("read %d bytes, %v; want the tunnel's end", n, err)
		}
		c.Close()
	}
	logs.wait(t, "connection to "+addr+" failed")
	goleak.VerifyNone(t, opts)
}
