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
// whenever the local side had half-closed first (found by the half-close
// test of issue 2). With the EOF in-band, each side closes the smux stream
// only after it has read the peer's EOF, so nothing unread can be dropped.
// The framing costs 3 bytes per 64 KiB and no copy in the copy loop.
type Stream struct {
	s *smux.Stream

	// read side: one reader at a time
	remain int // payload bytes left in the current data frame
	rEOF   bool
	rhdr   [frameHeader]byte
	rhdrN  int // header bytes read so far: a deadline may strike mid-header

	wmu    sync.Mutex
	wEOF   bool
	closed atomic.Bool
}

// Frame types of a Stream.
const (
	frameData byte = 0
	frameEOF  byte = 1

	frameHeader = 3
	// MaxPayload keeps a framed chunk within one smux frame (65535 bytes).
	MaxPayload = 65535 - frameHeader
)

// ErrBadFrame is returned by Read when the peer breaks the framing.
var ErrBadFrame = errors.New("mux: bad stream frame")

// NewStream starts framing on s. Both ends must call it after the
// header/status exchange.
func NewStream(s *smux.Stream) *Stream { return &Stream{s: s} }

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
	n, err := c.s.Read(p)
	c.remain -= n
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// nextFrame reads frame headers until payload is pending (nil), the peer's
// EOF frame (io.EOF) or an error.
func (c *Stream) nextFrame() error {
	for c.remain == 0 {
		if c.rEOF {
			return io.EOF
		}
		for c.rhdrN < frameHeader {
			n, err := c.s.Read(c.rhdr[c.rhdrN:])
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
		default:
			return fmt.Errorf("%w: type %d", ErrBadFrame, c.rhdr[0])
		}
	}
	return nil
}

// Write frames p, copying it through a pooled buffer so each chunk goes to
// smux in one Write (one smux frame). Copy avoids the copy by reading
// straight into a frame.
func (c *Stream) Write(p []byte) (int, error) {
	bp := GetBuf()
	defer PutBuf(bp)
	buf := *bp
	written := 0
	for len(p) > 0 {
		k := min(len(p), MaxPayload, len(buf)-frameHeader)
		copy(buf[frameHeader:], p[:k])
		if err := c.writeFrame(buf[:frameHeader+k]); err != nil {
			return written, err
		}
		written += k
		p = p[k:]
	}
	return written, nil
}

// writeFrame fills in the header of a frame whose payload is already at
// b[frameHeader:] and sends it.
func (c *Stream) writeFrame(b []byte) error {
	b[0] = frameData
	binary.BigEndian.PutUint16(b[1:], uint16(len(b)-frameHeader))
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wEOF {
		return io.ErrClosedPipe
	}
	if _, err := c.s.Write(b); err != nil {
		// A deadline may have struck mid-frame: the rest of the stream
		// would be garbage to the peer, so the stream is over.
		c.wEOF = true
		c.s.Close()
		return err
	}
	return nil
}

// WaitRead blocks until payload bytes or the end of the stream are there,
// without a caller's buffer (see ReadWaiter). It returns io.EOF at the
// peer's EOF frame.
func (c *Stream) WaitRead() error {
	return c.nextFrame()
}

// CloseWrite sends the EOF frame: the peer reads io.EOF, and may still
// answer.
func (c *Stream) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wEOF {
		return nil
	}
	c.wEOF = true
	_, err := c.s.Write([]byte{frameEOF, 0, 0})
	return err
}

// Close ends the stream both ways.
func (c *Stream) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	return c.s.Close()
}

// Raw is the underlying smux stream (deadlines, addresses).
func (c *Stream) Raw() *smux.Stream { return c.s }

func (c *Stream) LocalAddr() net.Addr                { return c.s.LocalAddr() }
func (c *Stream) RemoteAddr() net.Addr               { return c.s.RemoteAddr() }
func (c *Stream) SetDeadline(t time.Time) error      { return c.s.SetDeadline(t) }
func (c *Stream) SetReadDeadline(t time.Time) error  { return c.s.SetReadDeadline(t) }
func (c *Stream) SetWriteDeadline(t time.Time) error { return c.s.SetWriteDeadline(t) }
