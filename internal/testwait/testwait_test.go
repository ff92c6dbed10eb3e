package testwait_test

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nanodems/connector/internal/testwait"
)

// Until returns as soon as try succeeds, after as many polls as it took.
func TestUntilSucceeds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		go func() {
			time.Sleep(time.Second)
			calls.Store(100)
		}()
		err := testwait.Until(time.Minute, func() error {
			if calls.Add(1) < 100 {
				return errors.New("not there")
			}
			return nil
		})
		if err != nil {
			t.Fatalf("Until = %v, want nil", err)
		}
	})
}

// On timeout Until returns try's last error, wrapped with the bound, and
// does not poll past the bound.
func TestUntilTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		last := errors.New("3 tunnels, want 0")
		start := time.Now()
		err := testwait.Until(10*time.Second, func() error { return last })
		if !errors.Is(err, last) || !strings.Contains(err.Error(), "after 10s") {
			t.Fatalf("Until = %v, want the last error after 10s", err)
		}
		if waited := time.Since(start); waited != 10*time.Second {
			t.Fatalf("gave up after %v of fake time, want exactly the 10s bound", waited)
		}
	})
}

// For returns once the condition holds.
func TestFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ready atomic.Bool
		time.AfterFunc(3*time.Second, func() { ready.Store(true) })
		testwait.For(t, time.Minute, "ready", ready.Load)
		if !ready.Load() {
			t.Fatal("For returned before the condition held")
		}
	})
}

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the goroutine, as testing's does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// For fails the test with what it waited for when the bound passes.
func TestForFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &fatalRecorder{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			testwait.For(rec, 5*time.Second, "the agent online", func() bool { return false })
		}()
		<-done
		if rec.msg != "gave up after 5s waiting for the agent online" {
			t.Fatalf("For failed with %q", rec.msg)
		}
	})
}
