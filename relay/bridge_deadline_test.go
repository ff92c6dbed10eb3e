package relay_test

import (
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/nanodems/connector/internal/testwait"
	"github.com/nanodems/connector/relay"
)

// TestFleetBridgeReadDeadlineWhileWaiting: a read deadline set while a
// Read waits on a bridged tunnel with none ends that Read with
// os.ErrDeadlineExceeded, as on a TCP conn, on either bridge transport:
// the smux stream's deadline wakes the Read; on gRPC the Read waits in
// RecvMsg itself, which nothing else interrupts, so the tunnel ends with
// it (a Read that starts with a deadline leaves the tunnel usable:
// TestFleetBridgeConn). Closed, both relays let go of the stream.
func TestFleetBridgeReadDeadlineWhileWaiting(t *testing.T) {
	f := startFleet(t, 2)
	r1, r2 := f.relays[0], f.relays[1]
	c, err := r2.Dial(context.Background(), relay.Principal{Admin: true, Actor: "test"}, f.d.Info.EchoHandle, relay.DialOptions{})
	must(t, err)
	defer c.Close()
	var b [16]byte
	_, err = c.Write([]byte("ping"))
	must(t, err)
	_, err = io.ReadFull(c, b[:4])
	must(t, err)

	read := make(chan error, 1)
	go func() {
		_, err := c.Read(b[:])
		read <- err
	}()
	time.Sleep(200 * time.Millisecond) // deliberate: let the Read wait with no deadline
	must(t, c.SetReadDeadline(time.Now().Add(100*time.Millisecond)))
	select {
	case err := <-read:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("waiting Read ended with %v, want the deadline", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a deadline set while a Read waited did not end it")
	}
	if _, err := c.Read(b[:]); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read after the cut: %v", err)
	}
	c.Close()
	testwait.For(t, 10*time.Second, "bridges ended on both relays", func() bool {
		return r1.BridgeStats().Open == 0 && r2.BridgeStats().Open == 0
	})
}
