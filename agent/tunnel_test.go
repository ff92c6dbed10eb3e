package agent

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/nanodems/connector/mux"
)

// classify must tell the operator's errors apart from real dial failures.
func TestClassifyDialErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedAddr := ln.Addr().String()
	ln.Close()

	dial := func(addr string, timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	}
	if got := classify(dial(refusedAddr, time.Second)); got != mux.Refused {
		t.Errorf("closed port: %v, want %v", got, mux.Refused)
	}
	if got := classify(dial("no-such-host.invalid:80", 5*time.Second)); got != mux.Unreachable {
		t.Errorf("unknown name: %v, want %v", got, mux.Unreachable)
	}
	if got := classify(context.DeadlineExceeded); got != mux.TimedOut {
		t.Errorf("deadline: %v, want %v", got, mux.TimedOut)
	}
}
