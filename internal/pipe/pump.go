package pipe

import (
	"errors"
	"sync/atomic"
)

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

// InlineSource is a Notifier whose bytes can also be taken, without
// waiting, on the goroutine that delivered them: a mux stream over the
// patched smux, whose session's receive loop calls the data notification
// with no lock held. A copy from one to a socket (or an
// InlineFrameWriter) then writes each chunk on that loop when the
// destination takes it at once, with no goroutine started and no other
// thread woken; a chunk the destination does not take whole, the end of
// the stream or an error go on on the pump's goroutine as before.
//
// Why: a 64 B round trip through the agent and nanodems-tunnel cost each
// of them 21 – 22 system calls and 10 context switches with a pump
// started per chunk, and 18 – 19 and 8 with the chunk written on the
// receive loop; the relay's 20 – 24 and 10 – 11 fell to 17 and 6 – 7
// (docs/perf-peers-changes.md).
type InlineSource interface {
	Notifier
	// SetDataNotify sets fn to be called when bytes arrive, on a
	// goroutine that fn may hold for non-blocking work only.
	SetDataNotify(fn func())
	// TryRead is Read without waiting: ErrWouldBlock when nothing is
	// buffered (ReadReady then tells whether a Read would still return,
	// at the end of the stream).
	TryRead(p []byte) (int, error)
}

// InlineFrameWriter is a FrameWriter that can also send a frame without
// waiting, or say it cannot: a mux stream on a session whose connection
// tells whether a write would wait. A copy from an InlineSource to one
// forwards each small chunk on the delivering goroutine when it can (the
// relay, from one session's receive loop to another session); bulk goes
// on the pump's goroutine, so that sessions encrypt in parallel.
type InlineFrameWriter interface {
	FrameWriter
	// TryWriteFrame sends frame as WriteFrame does if that needs no
	// waiting, and reports false, having sent nothing, otherwise. An
	// error reports true. from is the source the frame's payload was
	// just read from, on the goroutine that delivered it: the writer may
	// leave the frame buffered until that goroutine reads from its own
	// source again, so that what one read delivered leaves together.
	TryWriteFrame(frame []byte, from InlineSource) (bool, error)
}

// ErrWouldBlock is returned by an InlineSource's TryRead when a Read
// would wait.
var ErrWouldBlock = errors.New("pipe: read would block")

// pump copies from a Notifier. state counts notifications: the one that
// finds it at zero starts a goroutine, which moves chunks while the
// source is ready and ends when no notification came since it last
// looked.
type pump struct {
	c     *copier
	src   Notifier
	in    InlineSource // src, when chunks are written on the delivering goroutine
	end   func(error)
	state atomic.Int32
	over  bool // the copy has ended; only the running goroutine touches it
}

// startPump starts copying with c from src, calling end with the copy's
// result once (after the half-close of its destination, as Copy does).
func startPump(c *copier, src Notifier, end func(error)) {
	p := &pump{c: c, src: src, end: end}
	src.SetReadNotify(p.notify)
	if in, ok := src.(InlineSource); ok && c.writesAtOnce() {
		p.in = in
		in.SetDataNotify(p.notifyData)
	}
	p.notify() // bytes may be buffered already
}

// notifyData moves what arrived on the delivering goroutine, as far as
// the destination takes it without waiting; the rest, and everything but
// bytes, goes to the pump's goroutine.
func (p *pump) notifyData() {
	if p.state.Add(1) != 1 {
		return // the goroutine runs, or an earlier notification is still here
	}
	for {
		p.state.Store(1)
		if p.over || !p.c.moveBuffered(p.in) || p.src.ReadReady() {
			go p.run()
			return
		}
		if p.state.CompareAndSwap(1, 0) {
			return
		}
	}
}

func (p *pump) notify() {
	if p.state.Add(1) == 1 {
		go p.run()
	}
}

func (p *pump) run() {
	p.c.fresh = true
	for {
		p.state.Store(1)
		for !p.over && (p.c.pending() || p.src.ReadReady()) {
			if stop, err := p.c.step(); stop {
				p.over = true
				p.src.SetReadNotify(nil)
				if p.in != nil {
					p.in.SetDataNotify(nil)
				}
				p.end(p.c.finish(err))
			}
		}
		if p.state.CompareAndSwap(1, 0) {
			return
		}
	}
}
