package pipe

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// Aborter is a connection that can tell its peer the stream was cut rather
// than finished (a WebSocket's close status). Join aborts instead of
// closing when a direction fails, so a dropped agent session reaches the
// operator as an error, not as a clean EOF.
type Aborter interface {
	Abort(reason error) error
}

// abort ends c so that its peer sees a cut, not an end: a WebSocket gets
// an error status, a TCP connection a reset (a target that reads its
// request to EOF must not act on a truncated one).
func abort(c net.Conn, err error) {
	switch c := c.(type) {
	case Aborter:
		c.Abort(err)
	case *net.TCPConn:
		c.SetLinger(0)
		c.Close()
	default:
		c.Close()
	}
}

// Join joins a and b until both directions have ended, preserving
// half-close: when a's peer stops sending, b sees EOF but may still answer.
// aToB and bToA count the bytes of each direction (either may be nil).
// Join closes both connections before it returns. A direction whose
// source is a Notifier runs as a pump (pump.go) and holds no goroutine
// while it waits; another runs on the calling goroutine or a new one.
func Join(a, b net.Conn, aToB, bToA *atomic.Uint64) error {
	errc := make(chan error, 1)
	newJoint(a, b, func(err error) { errc <- err }).start(aToB, bToA, true)
	return <-errc
}

// JoinAsync is Join that returns at once and calls done with Join's
// result, on some goroutine, once both directions have ended and both
// connections are closed. Between two Notifiers it holds no goroutine
// while the tunnel is idle: the relay joins its tunnels so.
func JoinAsync(a, b net.Conn, aToB, bToA *atomic.Uint64, done func(error)) {
	newJoint(a, b, done).start(aToB, bToA, false)
}

// joint is the two directions of one Join.
type joint struct {
	a, b net.Conn
	errs [2]error     // per direction: 0 is a → b, 1 is b → a
	left atomic.Int32 // directions not yet ended
	done func(error)
}

func newJoint(a, b net.Conn, done func(error)) *joint {
	j := &joint{a: a, b: b, done: done}
	j.left.Store(2)
	return j
}

// start starts both directions; with inline, a direction that is not a
// pump runs on the calling goroutine, and start returns when it ends.
func (j *joint) start(aToB, bToA *atomic.Uint64, inline bool) {
	type dir struct {
		i        int
		dst, src net.Conn
		count    *atomic.Uint64
	}
	var blocking []dir
	for _, d := range []dir{{0, j.b, j.a, aToB}, {1, j.a, j.b, bToA}} {
		if n, ok := d.src.(Notifier); ok {
			startPump(newCopier(d.dst, d.src, d.count), n, func(err error) { j.end(d.i, err) })
			continue
		}
		blocking = append(blocking, d)
	}
	for k, d := range blocking {
		if inline && k == len(blocking)-1 {
			_, err := Copy(d.dst, d.src, d.count)
			j.end(d.i, err)
			return
		}
		go runBursts(newCopier(d.dst, d.src, d.count), func(err error) { j.end(d.i, err) })
	}
}

// runBursts runs c's steps until the copy ends, and goes on on a fresh
// goroutine whenever a read did not fill its buffer (the source is likely
// drained) and the burst before it ended more than busyGap earlier: the
// wait for the next bytes then parks on a small stack, not on the one the
// write path grew. A chunk written through a mux stream
// to TLS grows a stack to 8 KiB, and the runtime never halves a parked
// stack to below 4 KiB, so the agent's and nanodems-tunnel's goroutine
// per tunnel held 8 KiB while the tunnel idled. A burst costs a goroutine
// start and the growth of its stack instead, in one step where the stack
// is shallow (ReserveStack): 7 % of the agent's CPU samples with 1,000
// connections each echoing 64 B ten times a second, against 12.5 % when
// the write path grew it twice (docs/perf-peers-changes.md).
func runBursts(c *copier, end func(error)) {
	c.fresh = true
	for {
		stop, err := c.step()
		if stop {
			end(c.finish(err))
			return
		}
		if !c.full {
			now := time.Now()
			busy := now.Sub(c.lastBurst) < busyGap
			c.lastBurst = now
			if !busy {
				go runBursts(c, end)
				return
			}
		}
	}
}

// busyGap: a burst that ends this soon after the previous one waits for
// the next on the same goroutine. A fresh goroutine per burst keeps idle
// tunnels on small stacks, but its start wakes another thread of the
// runtime (newproc's wakep), which looks for work, finds none and sleeps
// again: for a tunnel that carries one message after another, that was 2
// of the 7 context switches per 64 B round trip in the agent and in
// nanodems-tunnel. A tunnel that goes quiet gets its small stack back at
// its next burst that follows a pause.
var busyGap = time.Millisecond

// end records direction i's result; the last one closes both connections
// and calls done.
func (j *joint) end(i int, err error) {
	if err != nil {
		// A broken direction ends the tunnel: unblock the other one.
		abort(j.a, err)
		abort(j.b, err)
	}
	j.errs[i] = err
	if j.left.Add(-1) != 0 {
		return
	}
	// Once one direction fails, the abort above makes the other fail with
	// "use of closed connection": drop those so the cause is returned.
	err = errors.Join(cause(j.errs[1]), cause(j.errs[0]))
	j.a.Close()
	j.b.Close()
	j.done(err)
}

func cause(err error) error {
	if err == nil || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe) {
		return nil
	}
	return err
}
