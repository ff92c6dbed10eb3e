package mux

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
)

// BufSize is the copy buffer of every tunnel direction. 64 KiB matches
// smux's largest frame, so one Read from a stream fills at most one frame
// and one Write to a stream makes one frame (docs/perf.md has the sweep).
const BufSize = 64 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, BufSize); return &b }}

// GetBuf returns a pooled copy buffer of BufSize bytes; PutBuf returns it.
func GetBuf() *[]byte  { return bufPool.Get().(*[]byte) }
func PutBuf(b *[]byte) { bufPool.Put(b) }

// CloseWriter is a connection whose write side can be shut alone
// (*net.TCPConn, *tls.Conn, *smux.Stream).
type CloseWriter interface {
	CloseWrite() error
}

// ReadWaiter is a source that can wait until it has data without being
// handed a buffer. Copy waits first and takes a pooled buffer only once
// bytes are there, so an idle tunnel holds no copy buffer: thousands of
// idle camera streams would otherwise pin 64 KiB per direction each
// (docs/perf.md, memory per idle tunnel).
type ReadWaiter interface {
	WaitRead() error
}

// Copy copies src to dst through pooled buffers, adds every chunk to count
// (if not nil), and then half-closes dst so the peer sees EOF while the
// other direction keeps flowing. It returns the bytes copied and the first
// error other than EOF.
func Copy(dst io.Writer, src io.Reader, count *atomic.Uint64) (int64, error) {
	var framed *Stream
	if f, ok := dst.(framer); ok {
		framed = f.framed()
	}
	wait := readWaiterOf(src)
	var total int64
	var err error
	full := false // the last read filled the buffer: more is likely queued
	for {
		if wait != nil && !full {
			if werr := wait(); werr != nil {
				if werr != io.EOF {
					err = werr
				}
				break
			}
		}
		bp := GetBuf()
		buf := *bp
		if framed != nil {
			// Read straight into the payload part of a frame: no copy.
			buf = buf[frameHeader : frameHeader+MaxPayload]
		}
		n, rerr := src.Read(buf)
		var werr error
		if n > 0 {
			if count != nil {
				count.Add(uint64(n))
			}
			if framed != nil {
				werr = framed.writeFrame((*bp)[:frameHeader+n])
			} else {
				_, werr = dst.Write(buf[:n])
			}
			if werr == nil {
				total += int64(n)
			}
		}
		full = n == len(buf)
		if werr != nil {
			// Not back to the pool: smux's Write returns at a deadline
			// or the session's death while its send loop may still be
			// reading the frame (a race -race caught in TestRTSPFFmpeg).
			err = werr
			break
		}
		PutBuf(bp)
		if rerr != nil {
			if rerr != io.EOF {
				err = rerr
			}
			break
		}
	}
	if cw, ok := dst.(CloseWriter); ok && err == nil {
		err = cw.CloseWrite()
	}
	return total, err
}

// framer is a destination that writes through a *Stream: the Stream
// itself, or a type embedding one (the relay's tunnelConn), which thereby
// gets the promoted method. Copy then reads straight into the Stream's
// frames, with no copy through Stream.Write (its cost is in
// docs/perf-bench.md).
type framer interface {
	framed() *Stream
}

func (c *Stream) framed() *Stream { return c }

// readWaiterOf returns how to wait for src to have data, or nil.
func readWaiterOf(src io.Reader) func() error {
	switch s := src.(type) {
	case ReadWaiter:
		return s.WaitRead
	case syscall.Conn:
		rc, err := s.SyscallConn()
		if err != nil {
			return nil
		}
		return func() error { return waitReadable(rc) }
	}
	return nil
}

// Aborter is a connection that can tell its peer the stream was cut rather
// than finished (a WebSocket's close status). Pipe aborts instead of closing
// when a direction fails, so a dropped agent session reaches the operator
// as an error, not as a clean EOF.
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

// Pipe joins a and b until both directions have ended, preserving
// half-close: when a's peer stops sending, b sees EOF but may still answer.
// aToB and bToA count the bytes of each direction (either may be nil).
// Pipe closes both connections before it returns.
func Pipe(a, b net.Conn, aToB, bToA *atomic.Uint64) error {
	errc := make(chan error, 1)
	go func() {
		_, err := Copy(b, a, aToB)
		if err != nil {
			// A broken direction ends the tunnel: unblock the other copy.
			abort(a, err)
			abort(b, err)
		}
		errc <- err
	}()
	_, err := Copy(a, b, bToA)
	if err != nil {
		abort(a, err)
		abort(b, err)
	}
	// Once one direction fails, Pipe's own abort makes the other fail with
	// "use of closed connection": drop those so the cause is returned.
	err = errors.Join(cause(err), cause(<-errc))
	a.Close()
	b.Close()
	return err
}

func cause(err error) error {
	if err == nil || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe) {
		return nil
	}
	return err
}
