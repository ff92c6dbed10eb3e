package mux

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nanodems/connector/internal/pipe"
	"github.com/xtaci/smux"
)

// Stream is a tunnel's byte stream over one smux stream, after the header
// and status. It frames the bytes in-band:
//
//	type u8 | len u16 | payload [len]byte
//
// with type Data or EOF. EOF is half-close: the peer reads io.EOF and may
// go on writing. smux's own CloseWrite is not used, because smux v1.5.57
// drops bytes still unread in a stream's buffer as soon as both ends have
// sent FIN (stream.tryHalfCloseCleanup → Session.streamClosed →
// recycleTokens): a reply that arrives just before the peer's FIN was lost
// whenever the local side had half-closed first (found by the
// relay's half-close test). With the EOF in-band, each side closes the smux stream
// only after it has read the peer's EOF, so nothing unread can be dropped.
// The framing costs 3 bytes per 64 KiB and no copy in the copy loop.
//
// A third frame type, Move, lets a tunnel leave the shared session for a
// dedicated connection (BEP) with no byte lost or reordered: each
// side, once it has the dedicated connection (Attach), writes Move as its
// last frame on the shared stream and everything after on the dedicated
// one; a reader that meets Move goes on reading from the dedicated
// connection. The two directions move independently, in either order.
type Stream struct {
	shared *smux.Stream
	attach chan net.Conn // the dedicated connection, for the reader
	done   chan struct{} // closed by Close

	// read side: one reader at a time
	r      net.Conn // shared, then the dedicated connection after Move
	remain int      // payload bytes left in the current data frame
	rEOF   bool
	rhdr   [frameHeader]byte
	rhdrN  int // header bytes read so far: a deadline may strike mid-header

	wmu       sync.Mutex
	w         net.Conn // shared, then the dedicated connection after Attach
	wEOF      bool
	dedicated net.Conn // set by Attach

	// sharedDone counts the directions finished with the shared stream
	// (Move or EOF sent; Move or EOF read); at 2 it is closed early, so a
	// moved tunnel holds no smux stream.
	sharedDone atomic.Int32
	closed     atomic.Bool
}

// Frame types of a Stream.
const (
	frameData byte = 0
	frameEOF  byte = 1
	frameMove byte = 2

	frameHeader = 3
	// MaxPayload keeps a framed chunk within one smux frame (65535 bytes).
	MaxPayload = 65535 - frameHeader
)

// ErrBadFrame is returned by Read when the peer breaks the framing.
var ErrBadFrame = errors.New("mux: bad stream frame")

// ErrNoDedicated is returned by Read when the peer moved its direction to
// a dedicated connection that never arrived.
var ErrNoDedicated = errors.New("mux: peer moved to a dedicated connection that never arrived")

// attachTimeout bounds the wait for a dedicated connection after the
// peer's Move: the agent dials it before it sends Move, so only a lost
// connection takes this long.
const attachTimeout = 30 * time.Second

// NewStream starts framing on s. Both ends must call it after the
// header/status exchange.
func NewStream(s *smux.Stream) *Stream {
	return &Stream{shared: s, r: s, w: s, attach: make(chan net.Conn, 1), done: make(chan struct{})}
}

// Attach moves this end's writes to the dedicated connection d, after a
// Move frame on the shared stream, and hands d to the reader for when the
// peer's Move arrives. d must carry the same tunnel on the peer's side.
func (c *Stream) Attach(d net.Conn) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.dedicated != nil {
		return errors.New("mux: stream already has a dedicated connection")
	}
	if c.closed.Load() {
		return net.ErrClosed
	}
	c.dedicated = d
	c.attach <- d
	if !c.wEOF {
		if _, err := c.shared.Write([]byte{frameMove, 0, 0}); err != nil {
			return err
		}
		c.doneWithShared()
	}
	c.w = d
	return nil
}

// Dedicated reports whether the stream has moved to a dedicated connection.
func (c *Stream) Dedicated() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.dedicated != nil
}

func (c *Stream) doneWithShared() {
	if c.sharedDone.Add(1) == 2 {
		c.shared.Close()
	}
}

// Read reads payload bytes; io.EOF after the peer's EOF frame. A peer that
// vanishes without one yields io.ErrUnexpectedEOF: the tunnel was cut, and
// callers must not mistake that for a clean end.
func (c *Stream) Read(p []byte) (int, error) {
	if err := c.nextFrame(); err != nil {
		return 0, err
	}
	if len(p) > c.remain {
		p = p[:c.remain]
	}
	var n int
	var err error
	if c.r != net.Conn(c.shared) {
		// A dedicated TLS connection returns at most one 16 KiB record
		// per Read, where the shared smux stream hands over a whole
		// frame. The peer wrote the frame in one Write, so the rest is on
		// its way: wait for it, and a moved tunnel forwards 64 KiB
		// chunks again instead of 16 KiB ones, a quarter of the frames
		// and WebSocket messages downstream (relay system calls per MiB
		// echoed on the CLI mux: 340 → 281; docs/perf-bench.md).
		n, err = io.ReadFull(c.r, p)
	} else {
		n, err = c.r.Read(p)
	}
	c.remain -= n
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// nextFrame reads frame headers until payload is pending (nil), the peer's
// EOF frame (io.EOF) or an error. A header TryRead left complete is
// taken here.
func (c *Stream) nextFrame() error {
	for c.remain == 0 {
		if c.rEOF {
			return io.EOF
		}
		for c.rhdrN < frameHeader {
			n, err := c.r.Read(c.rhdr[c.rhdrN:])
			c.rhdrN += n
			if err != nil && c.rhdrN < frameHeader {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
		}
		c.rhdrN = 0
		n := int(binary.BigEndian.Uint16(c.rhdr[1:]))
		switch c.rhdr[0] {
		case frameData:
			c.remain = n
		case frameEOF:
			if n != 0 {
				return fmt.Errorf("%w: EOF frame with %d bytes", ErrBadFrame, n)
			}
			c.rEOF = true
			if c.r == net.Conn(c.shared) {
				c.doneWithShared()
			}
		case frameMove:
			if n != 0 || c.r != net.Conn(c.shared) {
				return fmt.Errorf("%w: unexpected move", ErrBadFrame)
			}
			if err := c.awaitDedicated(); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: type %d", ErrBadFrame, c.rhdr[0])
		}
	}
	return nil
}

// TryRead is Read without waiting (see pipe.InlineSource): it returns
// pipe.ErrWouldBlock when no payload is buffered on the shared stream.
// It takes data frames only: an EOF or Move frame's header stays read
// and ReadReady says true, so that Read acts on it on the copy's
// goroutine (the EOF may close the shared stream, the Move waits for the
// dedicated connection; neither may happen on the session's receive
// loop).
func (c *Stream) TryRead(p []byte) (int, error) {
	for c.remain == 0 {
		if c.rEOF || c.r != net.Conn(c.shared) {
			return 0, pipe.ErrWouldBlock
		}
		for c.rhdrN < frameHeader {
			n, err := c.shared.TryRead(c.rhdr[c.rhdrN:])
			c.rhdrN += n
			if err != nil && c.rhdrN < frameHeader {
				return 0, tryReadErr(err)
			}
		}
		if c.rhdr[0] != frameData {
			return 0, pipe.ErrWouldBlock
		}
		c.rhdrN = 0
		c.remain = int(binary.BigEndian.Uint16(c.rhdr[1:]))
	}
	if len(p) > c.remain {
		p = p[:c.remain]
	}
	n, err := c.shared.TryRead(p)
	c.remain -= n
	if err != nil {
		return n, tryReadErr(err)
	}
	return n, nil
}

func tryReadErr(err error) error {
	switch err {
	case smux.ErrWouldBlock:
		return pipe.ErrWouldBlock
	case io.EOF:
		return io.ErrUnexpectedEOF
	}
	return err
}

// awaitDedicated switches the reader to the dedicated connection, waiting
// for Attach if the peer's Move came first.
func (c *Stream) awaitDedicated() error {
	t := time.NewTimer(attachTimeout)
	defer t.Stop()
	select {
	case d := <-c.attach:
		c.r = d
		c.doneWithShared()
		return nil
	case <-c.done:
		return net.ErrClosed
	case <-t.C:
		return ErrNoDedicated
	}
}

// Write frames p, copying it through a pooled buffer (a small one for a
// small p) so each chunk goes to smux in one Write (one smux frame).
// pipe.Copy avoids the copy by reading straight into a frame (WriteFrame).
//
// After a failed write the buffer is dropped, not pooled: smux's Write
// returns at a deadline or when the session dies while its send loop may
// still be reading the frame, so reusing it would race (the race detector
// caught it in TestRTSPFFmpeg).
func (c *Stream) Write(p []byte) (int, error) {
	bp := pipe.GetBufFor(frameHeader + min(len(p), MaxPayload))
	buf := *bp
	written := 0
	for len(p) > 0 {
		k := min(len(p), MaxPayload, len(buf)-frameHeader)
		copy(buf[frameHeader:], p[:k])
		if err := c.WriteFrame(buf[:frameHeader+k]); err != nil {
			return written, err
		}
		written += k
		p = p[k:]
	}
	pipe.PutBuf(bp)
	return written, nil
}

// Stream is a pipe.FrameWriter: pipe.Copy reads straight into the payload
// of a frame, with no copy through Write.
var _ pipe.FrameWriter = (*Stream)(nil)

// FrameLayout returns the header length of a data frame and its largest
// payload (see pipe.FrameWriter).
func (c *Stream) FrameLayout() (header, maxPayload int) { return frameHeader, MaxPayload }

// WriteFrame fills in the header of a data frame whose payload is already
// in place after FrameLayout's header, and sends it.
func (c *Stream) WriteFrame(b []byte) error {
	b[0] = frameData
	binary.BigEndian.PutUint16(b[1:], uint16(len(b)-frameHeader))
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wEOF {
		return io.ErrClosedPipe
	}
	if _, err := c.w.Write(b); err != nil {
		// A deadline may have struck mid-frame: the rest of the stream
		// would be garbage to the peer, so the stream is over.
		c.wEOF = true
		c.w.Close()
		return err
	}
	return nil
}

// TryWriteFrame is WriteFrame if that needs no waiting (see
// pipe.InlineFrameWriter): the stream has not moved to a dedicated
// connection, and its smux stream can send the frame at once
// (smux.Stream.TryWrite). It reports false, having sent nothing,
// otherwise. When from is a Stream (or wraps one) the frame was read
// from on its session's receive loop, the frame may leave with the
// others that loop forwards from the same read of its connection.
func (c *Stream) TryWriteFrame(b []byte, from pipe.InlineSource) (bool, error) {
	if !c.wmu.TryLock() {
		return false, nil
	}
	defer c.wmu.Unlock()
	if c.wEOF {
		return true, io.ErrClosedPipe
	}
	if c.w != net.Conn(c.shared) {
		return false, nil
	}
	b[0] = frameData
	binary.BigEndian.PutUint16(b[1:], uint16(len(b)-frameHeader))
	var loop *smux.Stream
	if l, ok := from.(interface{ sharedStream() *smux.Stream }); ok {
		loop = l.sharedStream()
	}
	sent, err := c.shared.TryWrite(b, loop)
	if err != nil {
		c.wEOF = true
		c.w.Close()
		return true, err
	}
	return sent, nil
}

// sharedStream is the smux stream TryRead reads, for TryWriteFrame.
func (c *Stream) sharedStream() *smux.Stream { return c.shared }

// Stream is a pipe.InlineFrameWriter: the relay forwards a chunk from one
// session to another on the receive loop that delivered it.
var _ pipe.InlineFrameWriter = (*Stream)(nil)

// WaitRead blocks until payload bytes or the end of the stream are there,
// without a caller's buffer (see pipe.ReadWaiter). It returns io.EOF at the
// peer's EOF frame.
func (c *Stream) WaitRead() error {
	return c.nextFrame()
}

// Stream is a pipe.Notifier: the relay's copies from it hold no
// goroutine while the tunnel is idle.
var _ pipe.Notifier = (*Stream)(nil)

// ReadReady reports whether a Read would return without waiting for the
// peer (see pipe.Notifier). After a Move it cannot tell, and says true.
// Like Read, it is for the stream's one reader.
func (c *Stream) ReadReady() bool {
	if c.rEOF || c.rhdrN == frameHeader || c.r != net.Conn(c.shared) {
		return true
	}
	return c.shared.ReadReady()
}

// SetReadNotify sets fn to be called whenever ReadReady may have turned
// true (see pipe.Notifier).
func (c *Stream) SetReadNotify(fn func()) { c.shared.SetReadNotify(fn) }

// SetDataNotify sets fn to be called on the session's receive loop when
// bytes arrive (see pipe.InlineSource).
func (c *Stream) SetDataNotify(fn func()) { c.shared.SetDataNotify(fn) }

// Stream is a pipe.InlineSource: nanodems-tunnel and the agent write what
// arrives for a tunnel to its socket on the session's receive loop.
var _ pipe.InlineSource = (*Stream)(nil)

// CloseWrite sends the EOF frame: the peer reads io.EOF, and may still
// answer.
func (c *Stream) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wEOF {
		return nil
	}
	c.wEOF = true
	if c.w == net.Conn(c.shared) && c.sharedDone.CompareAndSwap(1, 2) {
		// The peer's EOF is read already: this is the shared stream's
		// last frame, and it leaves with the FIN in one write.
		return c.shared.WriteClose([]byte{frameEOF, 0, 0})
	}
	_, err := c.w.Write([]byte{frameEOF, 0, 0})
	if c.w == net.Conn(c.shared) {
		c.doneWithShared()
	}
	return err
}

// Close ends the stream both ways.
func (c *Stream) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(c.done)
	c.wmu.Lock()
	d := c.dedicated
	c.wmu.Unlock()
	if d != nil {
		d.Close()
	}
	return c.shared.Close()
}

// ID is the smux stream id: the name of this tunnel within its session,
// by which a dedicated connection finds it.
func (c *Stream) ID() uint32 { return c.shared.ID() }

func (c *Stream) LocalAddr() net.Addr  { return c.shared.LocalAddr() }
func (c *Stream) RemoteAddr() net.Addr { return c.shared.RemoteAddr() }

// SetDeadline and friends apply to the shared stream and, once attached,
// the dedicated connection.
func (c *Stream) SetDeadline(t time.Time) error {
	return c.each(func(n net.Conn) error { return n.SetDeadline(t) })
}

func (c *Stream) SetReadDeadline(t time.Time) error {
	return c.each(func(n net.Conn) error { return n.SetReadDeadline(t) })
}

func (c *Stream) SetWriteDeadline(t time.Time) error {
	return c.each(func(n net.Conn) error { return n.SetWriteDeadline(t) })
}

func (c *Stream) each(f func(net.Conn) error) error {
	c.wmu.Lock()
	d := c.dedicated
	c.wmu.Unlock()
	err := f(c.shared)
	if d != nil {
		err = errors.Join(err, f(d))
	}
	return err
}

// Raw is the shared smux stream, for tests that write frames by hand.
func (c *Stream) Raw() *smux.Stream { return c.shared }

// Connection preambles: the first byte an agent writes on each TLS
// connection to the relay says what the connection is for.
const (
	PreambleSession   byte = 'S' // the shared smux session follows
	PreambleDedicated byte = 'D' // u32 stream id follows; then that tunnel's frames
	// PreambleDedicatedAcked is PreambleDedicated for an agent that waits
	// for the relay's DedicatedAccepted before it moves the tunnel. An
	// agent that moved first lost the tunnel whenever the relay then
	// refused the connection (its store read failed, the tunnel or the
	// session was not found, the connection reached a relay that does not
	// hold the session): its writes went to a closed connection, its Pipe
	// cut the device, and the relay's reader waited 30 s for a connection
	// that was gone. The relay still takes the old preamble, unanswered.
	PreambleDedicatedAcked byte = 'd'
)

// DedicatedAccepted is the relay's one-byte answer on a dedicated
// connection (PreambleDedicatedAcked) that it has found the tunnel and
// takes the connection: the tunnel's frames follow it. A refusal is the
// connection's close.
const DedicatedAccepted byte = 'A'

// AwaitAccepted reads the relay's DedicatedAccepted on c, waiting until
// deadline. Only after it may the agent Attach c: until then the tunnel
// stays on the shared session, and a refused connection costs nothing.
func AwaitAccepted(c net.Conn, deadline time.Time) error {
	if err := c.SetReadDeadline(deadline); err != nil {
		return err
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return fmt.Errorf("relay did not accept the dedicated connection: %w", err)
	}
	if b[0] != DedicatedAccepted {
		return fmt.Errorf("relay answered the dedicated connection with %#x, not its acceptance", b[0])
	}
	return c.SetReadDeadline(time.Time{})
}
