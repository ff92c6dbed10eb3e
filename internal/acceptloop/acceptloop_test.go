package acceptloop

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/nanodems/connector/internal/syncbuf"
	"github.com/nanodems/connector/internal/testnet"
	"github.com/nanodems/connector/internal/testwait"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// With no descriptor left, Accept fails with EMFILE; Serve must wait it
// out and accept the waiting connections once descriptors are free again,
// logging the burst once.
func TestServeSurvivesEMFILE(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const clients = 5
	var conns []net.Conn
	for range clients {
		c, err := net.Dial("tcp", ln.Addr().String()) // queued in the backlog
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()

	var logs syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	accepted := make(chan net.Conn, clients)
	restore := testnet.ExhaustFDs(t)
	done := make(chan error, 1)
	go func() {
		done <- Serve(context.Background(), ln, log, func(c net.Conn) { accepted <- c })
	}()

	// Serve meets EMFILE and must keep going: wait for its warning (or its
	// wrongful return), then give it a few backoff rounds. Descriptors
	// come back before any failure is reported, so the test can report.
	err = testwait.Until(10*time.Second, func() error {
		if len(done) == 0 && !strings.Contains(logs.String(), "accept failed") {
			return errors.New("no accept failure logged")
		}
		return nil
	})
	if err == nil && len(done) == 0 {
		time.Sleep(200 * time.Millisecond) // deliberate: several backoff rounds while still out of descriptors
	}
	restore()
	if err != nil {
		t.Fatalf("%v; logs:\n%s", err, logs.String())
	}
	if len(done) > 0 {
		t.Fatalf("Serve returned %v while out of descriptors", <-done)
	}

	for i := range clients {
		select {
		case c := <-accepted:
			c.Close()
		case err := <-done:
			t.Fatalf("Serve returned %v after %d of %d connections", err, i, clients)
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d connections accepted once descriptors were free", i, clients)
		}
	}
	out := logs.String()
	if n := strings.Count(out, "accept failed"); n != 1 {
		t.Errorf("accept failure logged %d times, want once per burst:\n%s", n, out)
	}
	if !strings.Contains(out, "too many open files") || !strings.Contains(out, "accepting again") {
		t.Errorf("logs lack the cause or the recovery:\n%s", out)
	}
	ln.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after close: %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the listener closed")
	}
}

// A cancelled context ends the wait between retries at once: in a
// synctest bubble, Serve returns with the fake clock where the cancel left
// it, with no backoff timer run out.
func TestServeContextEndsBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := &failing{}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- Serve(ctx, ln, slog.New(slog.DiscardHandler), func(c net.Conn) { c.Close() }) }()
		time.Sleep(50 * time.Millisecond) // fake time: several failed accepts and backoffs
		synctest.Wait()                   // Serve is asleep in a backoff
		if n := ln.accepts.Load(); n < 2 {
			t.Fatalf("%d accepts in 50 ms of backoff from 5 ms, want several", n)
		}
		cancelled := time.Now()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Serve = %v, want context.Canceled", err)
		}
		if waited := time.Since(cancelled); waited != 0 {
			t.Fatalf("Serve returned %v after the cancel, want at once (no timer)", waited)
		}
	})
}

// failing is a listener whose accepts always fail as when out of
// descriptors.
type failing struct{ accepts atomic.Int32 }

func (f *failing) Accept() (net.Conn, error) {
	f.accepts.Add(1)
	return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
}

func (f *failing) Close() error   { return nil }
func (f *failing) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
