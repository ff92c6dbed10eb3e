package pipe

import "sync/atomic"

// Notifier is a source that says whether a Read would return without
// waiting for its peer, and calls back when that may have changed (a
// smux stream of the connector's patched smux, and the mux stream over
// it). A copy from a Notifier runs as a pump: a goroutine exists only
// while bytes are there to move.
//
// Why: a goroutine blocked in Read keeps the stack it grew in the TLS
// write path (8 KiB; the runtime halves a parked stack only when three
// quarters of it are free), and the relay held two per tunnel: 15 KiB of
// its 21 KiB per idle tunnel (docs/perf-peers-changes.md).
type Notifier interface {
	// ReadReady reports whether a Read would return without waiting for
	// the peer: bytes buffered, or the end of the stream. It may say true
	// when it cannot tell; a Read then waits on the pump's goroutine.
	ReadReady() bool
	// SetReadNotify sets fn to be called whenever ReadReady may have
	// turned true; fn must not block (nil removes it).
	SetReadNotify(fn func())
}

// pump copies from a Notifier. state counts notifications: the one that
// finds it at zero starts a goroutine, which moves chunks while the
// source is ready and ends when no notification came since it last
// looked.
type pump struct {
	c     *copier
	src   Notifier
	end   func(error)
	state atomic.Int32
	over  bool // the copy has ended; only the running goroutine touches it
}

// startPump starts copying with c from src, calling end with the copy's
// result once (after the half-close of its destination, as Copy does).
func startPump(c *copier, src Notifier, end func(error)) {
	p := &pump{c: c, src: src, end: end}
	src.SetReadNotify(p.notify)
	p.notify() // bytes may be buffered already
}

func (p *pump) notify() {
	if p.state.Add(1) == 1 {
		go p.run()
	}
}

func (p *pump) run() {
	for {
		p.state.Store(1)
		for !p.over && p.src.ReadReady() {
			if stop, err := p.c.step(); stop {
				p.over = true
				p.src.SetReadNotify(nil)
				p.end(p.c.finish(err))
			}
		}
		if p.state.CompareAndSwap(1, 0) {
			return
		}
	}
}
