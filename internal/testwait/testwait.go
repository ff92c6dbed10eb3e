// Package testwait is how tests wait for something another goroutine or
// process makes true: poll with a short backoff, give up after a bound,
// and say what was awaited. The bound only keeps a broken build from
// hanging; it is never a speed assertion.
package testwait

import (
	"fmt"
	"testing"
	"time"
)

// Backoff bounds between two polls: the first comes soon, so a condition
// that is nearly true costs little, and later ones are spaced so that a
// poll that does real work (an HTTP request, a dial) does not load the
// machine the other side runs on.
const (
	firstPoll = time.Millisecond
	maxPoll   = 50 * time.Millisecond
)

// For polls cond until it returns true and fails the test with what if
// timeout passes first. It must be called from the test's goroutine.
func For(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	if err := Until(timeout, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	}); err != nil {
		tb.Fatalf("gave up after %v waiting for %s", timeout, what)
	}
}

var errNotYet = fmt.Errorf("not yet")

// Until calls try until it returns nil and returns nil then; if timeout
// passes first, it returns try's last error. For goroutines other than
// the test's, and for waits whose failure should say what was last seen.
func Until(timeout time.Duration, try func() error) error {
	deadline := time.Now().Add(timeout)
	pause := firstPoll
	for {
		err := try()
		if err == nil {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		time.Sleep(min(pause, time.Until(deadline)))
		pause = min(2*pause, maxPoll)
	}
}
