package rtsp

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/nanodems/connector/internal/testwait"
)

// TestStdOutputCloseWaitsForBatchInFlight: a close that comes while the
// writer has taken the queue and is still writing it (the queue empty,
// the bytes not yet out) lets that batch finish before the connection
// closes: a give-up's RTCP BYE, queued just before its close, reaches
// the viewer.
func TestStdOutputCloseWaitsForBatchInFlight(t *testing.T) {
	gw, viewer := net.Pipe() // a Write blocks until the viewer reads
	defer viewer.Close()
	o := newStdOutput(gw, 1<<20, 5*time.Second)
	o.start(func(f func()) { go f() })
	if err := o.write([]byte("BYE")); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 5*time.Second, "the writer taking the queue", func() bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		return len(o.q) == 0
	})
	o.close()

	viewer.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(viewer)
	if string(got) != "BYE" || err != nil {
		t.Fatalf("viewer read %q, %v; want the batch in flight, then the end", got, err)
	}
}
