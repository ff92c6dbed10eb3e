package store

import (
	"sync/atomic"
	"time"
)

// A LatencyObserver is told how long each database call took: op "read"
// for a query outside a transaction (until its first row is ready),
// "write" for a write transaction (from asking for the writer's turn to
// the commit, retries included) or a statement outside one. It runs on
// the caller's goroutine, so it must be cheap (a histogram's Observe).
type LatencyObserver func(op string, d time.Duration)

// latencyHook holds the observer of a store, settable after Open; nil
// until set. The conn values of one store share it.
type latencyHook struct {
	f atomic.Pointer[LatencyObserver]
}

// since reports the time since start to the observer, if there is one.
func (h *latencyHook) since(op string, start time.Time) {
	if h == nil {
		return
	}
	if f := h.f.Load(); f != nil {
		(*f)(op, time.Since(start))
	}
}

// ObserveLatency sets the observer of the store's database calls (the
// relay's metrics); the last one set wins.
func (s *sqlStore) ObserveLatency(f LatencyObserver) {
	if s.db.lat != nil {
		s.db.lat.f.Store(&f)
	}
}
