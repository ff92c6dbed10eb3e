package coalesce

import (
	"io"
	"sync"
	"sync/atomic"
)

// WriteHeld encrypts p as Write does, but may leave its records in c's
// buffer until the next read of loop's socket: the caller is the receive
// loop that reads loop (a *Conn; anything else makes this a Write), and
// forwards what one read of loop delivered. The records leave with the
// next write of c of any kind, when that loop is about to read its socket
// again, or when it calls FlushHeld; a loop must call FlushHeld before
// it waits for anything but its socket.
//
// Why: the relay forwards small chunks from one session to another on the
// receive loop that delivered them. Under 1,000 tunnels echoing 64 B every
// 100 ms, one read of a session's socket delivered five frames on average
// (4,100 reads and 22,400 writes per second): with one write per frame,
// writes were 43 % of the relay's CPU (docs/perf-peers-changes.md).
func (c *Conn) WriteHeld(p []byte, loop io.Reader) (int, error) {
	lc, ok := loop.(*Conn)
	if !ok || !c.handshook.Load() {
		return c.Write(p)
	}
	u := c.under
	n, err := c.encryptLocked(p)
	hold := u.buf != nil && u.err == nil
	switch {
	case !hold:
	case u.corked > 0:
		// A Write in progress writes them at its end.
		hold = false
	default:
		u.held.Store(int64(len(*u.buf)))
	}
	u.mu.Unlock()
	if hold {
		lc.under.loop.add(u)
	}
	return n, err
}

// FlushHeld writes the records that other connections hold until c's
// next read (WriteHeld), each in one system call.
func (c *Conn) FlushHeld() { c.under.loop.flush() }

// loopHolds lists the connections that hold records for the receive loop
// of one connection. Only that loop adds and flushes; the lock keeps a
// stray caller safe.
type loopHolds struct {
	any  atomic.Bool
	mu   sync.Mutex
	list []*under
	next []*under // the other slice, swapped in by flush
}

func (h *loopHolds) add(u *under) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, x := range h.list {
		if x == u {
			return
		}
	}
	h.list = append(h.list, u)
	h.any.Store(true)
}

func (h *loopHolds) flush() {
	h.mu.Lock()
	list := h.list
	h.list, h.next = h.next[:0], nil
	h.any.Store(false)
	h.mu.Unlock()
	for i, u := range list {
		u.flushHeld()
		list[i] = nil
	}
	h.mu.Lock()
	if h.next == nil {
		h.next = list[:0]
	}
	h.mu.Unlock()
}

// flushHeld writes u's held records. If another goroutine holds u's lock,
// that one writes them: a Write or a flush writes the whole buffer, and a
// Write still collecting writes it when it ends. Neither does it write
// when records were buffered after the last held ones (WriteBuffered):
// WriteWouldWait did not count them, and their writer flushes them all.
func (u *under) flushHeld() {
	if !u.mu.TryLock() {
		return
	}
	defer u.mu.Unlock()
	if u.corked > 0 || u.buf == nil || u.held.Load() != int64(len(*u.buf)) {
		return
	}
	u.writeBuf()
}

// WriteBuffered encrypts p into c's buffer without writing it: the
// records leave with the next Flush, or with any other write of c. The
// caller flushes soon, on its own goroutine, which may wait then.
//
// Why: in the agent and nanodems-tunnel, every tunnel's socket reader
// writes its chunk to the session on its own goroutine; with one write
// each, 10,000 chunks a second were 8,500 writes. A writer that buffers,
// yields, and then flushes lets the other readers the poller woke add
// theirs first (smux's flushAfterYield; docs/perf-peers-changes.md).
func (c *Conn) WriteBuffered(p []byte) (int, error) {
	if !c.handshook.Load() {
		return c.Write(p)
	}
	n, err := c.encryptLocked(p)
	c.under.mu.Unlock()
	return n, err
}

// encryptLocked encrypts p into the buffer without writing it, and
// returns with the buffer's lock held.
func (c *Conn) encryptLocked(p []byte) (int, error) {
	u := c.under
	u.cork()
	n, err := c.Conn.Write(p)
	u.mu.Lock()
	u.corked--
	if err == nil {
		err = u.err
	}
	return n, err
}

// Flush writes what WriteBuffered or WriteHeld left in c's buffer, in one
// system call, unless a Write in progress will.
func (c *Conn) Flush() error {
	u := c.under
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.corked > 0 || u.buf == nil {
		return u.err
	}
	return u.writeBuf()
}
