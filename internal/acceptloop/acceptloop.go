// Package acceptloop is the accept loop every listener of the connector
// runs: it hands each accepted connection to a handler and survives
// failed accepts.
//
// Why: an Accept that fails is almost never the listener's end. Out of
// file descriptors (EMFILE, ENFILE), out of buffers (ENOBUFS), a client
// that reset before it was accepted (ECONNABORTED): all pass, and the
// next Accept works. A loop that returns on them stops serving for good
// while the process looks healthy; a loop that retries at once spins a
// core for as long as the shortage lasts. Serve waits as net/http's
// Server.Serve does, 5 ms doubling to 1 s, and returns only when the
// listener is closed.
package acceptloop

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"
)

// Backoff bounds, net/http's: the first retry comes at once in human
// terms, and a long shortage costs one wake-up a second.
const (
	minDelay = 5 * time.Millisecond
	maxDelay = time.Second
)

// Serve accepts connections on ln and calls handle with each, on Serve's
// own goroutine: handle must return quickly (start a goroutine for the
// connection). A failed Accept is retried after a growing pause; the
// first failure of a burst is logged at warning level, and the recovery
// once. Serve returns nil when ln is closed, or ctx's error when ctx ends
// (it does not close ln; its owner does, which also ends Serve).
func Serve(ctx context.Context, ln net.Listener, log *slog.Logger, handle func(net.Conn)) error {
	var delay time.Duration
	var failures int
	var since time.Time
	for {
		c, err := ln.Accept()
		if err == nil {
			if failures > 0 {
				log.Info("accepting again", "addr", ln.Addr().String(), "failed_accepts", failures, "for", time.Since(since).Round(time.Millisecond))
				failures, delay = 0, 0
			}
			handle(c)
			continue
		}
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if failures == 0 {
			since = time.Now()
			log.Warn("accept failed; retrying with backoff until it works", "addr", ln.Addr().String(), "err", err)
		}
		failures++
		delay = min(max(2*delay, minDelay), maxDelay)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}
