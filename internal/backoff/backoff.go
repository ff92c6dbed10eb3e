// Package backoff spaces the reconnects of agents and CLIs that lost
// their relay: exponential, bounded, with full jitter, so that the
// thousands of clients one relay's failure cuts do not all come back in
// the same instant, and a relay that is down for long is not hammered.
package backoff

import (
	"math/rand/v2"
	"time"
)

// The bounds both clients use. The first retry comes within 250 ms, so a
// relay restart or a failover costs well under a second; the cap keeps a
// fleet's retries to one per client every 7.5 s on average while the
// relays are down.
const (
	Min = 250 * time.Millisecond
	Max = 15 * time.Second
	// Healthy is how long a session must have lived for the next loss to
	// start again from Min: a relay that accepts and drops at once must
	// not be retried at the fastest rate for ever.
	Healthy = 10 * time.Second
)

// Backoff is the state of one client's retries. The zero value starts at
// Min and caps at Max.
type Backoff struct {
	Min, Max time.Duration // zero: the package's bounds
	n        int
}

// Next is the wait before the next attempt: uniform in [0, d] where d
// doubles from Min with every call up to Max ("full jitter").
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = Min
	}
	if hi <= 0 {
		hi = Max
	}
	d := min(lo<<min(b.n, 30), hi)
	b.n++
	return rand.N(d + 1)
}

// Reset starts again from Min, after a session that lived long enough.
func (b *Backoff) Reset() { b.n = 0 }

// Done is Reset when a session that started at start has lived Healthy.
func (b *Backoff) Done(start time.Time) {
	if time.Since(start) >= Healthy {
		b.Reset()
	}
}
