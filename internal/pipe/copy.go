package pipe

import (
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// CloseWriter is a connection whose write side can be shut alone
// (*net.TCPConn, *tls.Conn, a mux stream).
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

// FrameWriter is a destination that sends its bytes in frames with a
// header in front. Copy then reads straight into the payload part of a
// pooled buffer and hands the whole frame over, with no copy through
// Write (its cost is in docs/perf-bench.md). A type that embeds a
// FrameWriter (the relay's tunnel connection embeds a mux stream) gets
// the same path through the promoted methods.
type FrameWriter interface {
	// FrameLayout returns the header length and the largest payload of
	// one frame. Copy reads at most min(maxPayload, BufSize-header) bytes
	// into a frame.
	FrameLayout() (header, maxPayload int)
	// WriteFrame fills in the header of frame[:header], whose payload is
	// already in place, and sends the frame. After an error the frame may
	// still be read by the sender, so Copy does not reuse its buffer.
	WriteFrame(frame []byte) error
}

// Copy copies src to dst through pooled buffers, adds every chunk to count
// (if not nil), and then half-closes dst so the peer sees EOF while the
// other direction keeps flowing. It returns the bytes copied and the first
// error other than EOF.
//
// A chunk is read into a SmallBufSize buffer until a read fills one; then
// into BufSize buffers for as long as reads bring more than a small buffer
// holds. An echo of 64 B holds 4 KiB while it waits for its destination,
// and a bulk transfer still moves 64 KiB chunks after its first 4 KiB.
func Copy(dst io.Writer, src io.Reader, count *atomic.Uint64) (int64, error) {
	c := newCopier(dst, src, count)
	for {
		if stop, err := c.step(); stop {
			return c.total, c.finish(err)
		}
	}
}

// copier is the state of one Copy between its chunks, so that a pump
// (pump.go) can run the same steps on whichever goroutine it has.
type copier struct {
	dst       io.Writer
	src       io.Reader
	count     *atomic.Uint64
	fw        FrameWriter
	header    int
	payload   int
	small     int
	wait      func() error
	raw       func(header, size int) (*[]byte, int, error)
	total     int64
	full      bool      // the last read filled the buffer: more is likely queued
	bulk      bool      // the last read brought at least a small buffer's worth
	fresh     bool      // step runs on a new goroutine, whose stack has not grown yet (ReserveStack)
	lastBurst time.Time // when runBursts last saw a burst end (busyGap)

	// For chunks moved on the delivering goroutine (moveBuffered):
	sw      *socketWriter     // dst's non-blocking writes, for a socket
	ifw     InlineFrameWriter // dst's, for a frame writer
	pend    *[]byte           // a chunk dst did not take whole: [pendOff:pendEnd] is left (a whole frame for ifw)
	pendOff int
	pendEnd int
	pendErr error // the end (io.EOF) or an error met there, for step to return
}

func newCopier(dst io.Writer, src io.Reader, count *atomic.Uint64) *copier {
	c := &copier{dst: dst, src: src, count: count}
	maxPayload := BufSize
	if fw, ok := dst.(FrameWriter); ok {
		c.fw = fw
		c.header, maxPayload = fw.FrameLayout()
	}
	c.payload = min(maxPayload, BufSize-c.header)
	c.small = min(maxPayload, SmallBufSize-c.header)
	c.wait, c.raw = readWaiterOf(src)
	return c
}

// step moves one chunk. It reports stop at the end of src (err nil) or
// at the first error other than EOF.
func (c *copier) step() (stop bool, err error) {
	if c.pend != nil {
		if err := c.flushPending(); err != nil {
			return true, err
		}
		if c.pendErr == nil {
			// The pump looks again before it reads: a read now would
			// wait on its goroutine for bytes that may never come.
			return false, nil
		}
	}
	if err := c.pendErr; err != nil {
		if err == io.EOF {
			return true, nil
		}
		return true, err
	}
	header := c.header
	size := c.small
	if c.bulk {
		size = c.payload
	}
	var bp *[]byte
	var n int
	var rerr error
	if c.raw != nil {
		if bp, n, rerr = c.raw(header, size); bp == nil {
			return true, rerr
		}
	} else {
		if c.wait != nil && !c.full {
			if werr := c.wait(); werr != nil {
				if werr != io.EOF {
					return true, werr
				}
				return true, nil
			}
		}
		bp = GetBufFor(header + size)
		n, rerr = c.src.Read((*bp)[header : header+size])
	}
	buf := (*bp)[header : header+size]
	if n > 0 {
		if c.count != nil {
			c.count.Add(uint64(n))
		}
		var werr error
		if c.fw != nil {
			if c.fresh {
				c.fresh = false
				ReserveStack()
			}
			werr = c.fw.WriteFrame((*bp)[:header+n])
		} else {
			_, werr = c.dst.Write(buf[:n])
		}
		if werr != nil {
			// Not back to the pool: smux's Write returns at a deadline
			// or the session's death while its send loop may still be
			// reading the frame (a race -race caught in TestRTSPFFmpeg).
			return true, werr
		}
		c.total += int64(n)
	}
	c.full = n == len(buf)
	c.bulk = n >= c.small
	PutBuf(bp)
	if rerr != nil {
		if rerr != io.EOF {
			return true, rerr
		}
		return true, nil
	}
	return false, nil
}

// inlineChunks counts the chunks moveBuffered wrote, for tests to tell
// that chunks took that path.
var inlineChunks atomic.Uint64

// pending reports whether moveBuffered left work for step.
func (c *copier) pending() bool { return c.pend != nil || c.pendErr != nil }

// flushPending writes the rest of the chunk the socket did not take at
// once, waiting as Write does.
func (c *copier) flushPending() error {
	bp := c.pend
	c.pend = nil
	if c.fw != nil {
		if err := c.fw.WriteFrame((*bp)[:c.pendEnd]); err != nil {
			return err
		}
		c.total += int64(c.pendEnd - c.header)
		PutBuf(bp)
		return nil
	}
	n, err := c.dst.Write((*bp)[c.pendOff:c.pendEnd])
	c.total += int64(n)
	if err != nil {
		return err
	}
	PutBuf(bp)
	return nil
}

// writesAtOnce reports whether moveBuffered can write to dst without
// waiting, and prepares it: an InlineFrameWriter, or a bare TCP or Unix
// socket (a type that wraps one, to count or to encrypt, must see its
// own Write).
func (c *copier) writesAtOnce() bool {
	if c.fw != nil {
		c.ifw, _ = c.dst.(InlineFrameWriter)
		return c.ifw != nil
	}
	var rc syscall.RawConn
	var err error
	switch d := c.dst.(type) {
	case *net.TCPConn:
		rc, err = d.SyscallConn()
	case *net.UnixConn:
		rc, err = d.SyscallConn()
	default:
		return false
	}
	if err != nil {
		return false
	}
	c.sw = newSocketWriter(rc)
	return c.sw != nil
}

// moveBuffered copies what src has buffered to the socket dst without
// waiting for either. It returns false when step must go on: the socket
// did not take a chunk whole (the rest is pending), or src ended or
// failed (pendErr).
func (c *copier) moveBuffered(src InlineSource) bool {
	header := c.header
	for {
		if c.ifw != nil && c.bulk {
			// Bulk goes on the pump's goroutine: the receive loop
			// would otherwise encrypt every other session's bulk too,
			// one chunk after another (1-stream throughput through the
			// relay 0.90× frp tcp with bulk forwarded on the loop,
			// against 0.96×; docs/perf-peers-changes.md).
			return false
		}
		size := c.small
		if c.bulk {
			size = c.payload
		}
		bp := GetBufFor(header + size)
		n, rerr := src.TryRead((*bp)[header : header+size])
		if n > 0 {
			if c.count != nil {
				c.count.Add(uint64(n))
			}
			c.full = n == size
			c.bulk = n >= c.small
			var w int
			var werr error
			if c.ifw != nil {
				var sent bool
				if sent, werr = c.ifw.TryWriteFrame((*bp)[:header+n], src); sent {
					w = n
				}
			} else {
				w, werr = c.sw.write((*bp)[:n])
			}
			c.total += int64(w)
			if werr != nil {
				c.pendErr = werr // the buffer is dropped, as step drops it
				return false
			}
			if w < n {
				c.pend, c.pendOff, c.pendEnd = bp, w, header+n
				if rerr != nil && rerr != ErrWouldBlock {
					c.pendErr = rerr
				}
				return false
			}
			inlineChunks.Add(1)
		}
		PutBuf(bp)
		switch {
		case rerr == ErrWouldBlock:
			return true
		case rerr != nil:
			c.pendErr = rerr
			return false
		}
	}
}

// finish half-closes dst after a clean end (err nil) and returns the
// Copy's error.
func (c *copier) finish(err error) error {
	if cw, ok := c.dst.(CloseWriter); ok && err == nil {
		if c.fw != nil && c.fresh {
			// A mux stream's close is a frame written as deep as a
			// chunk, and a burst that brought only the end is its
			// goroutine's first write.
			c.fresh = false
			ReserveStack()
		}
		err = cw.CloseWrite()
	}
	return err
}

// readWaiterOf returns how to wait for src to have data, or, for a
// socket, how to read it in the runtime's poller (rawReader); or neither.
func readWaiterOf(src io.Reader) (wait func() error, raw func(header, size int) (*[]byte, int, error)) {
	switch s := src.(type) {
	case ReadWaiter:
		return s.WaitRead, nil
	case syscall.Conn:
		rc, err := s.SyscallConn()
		if err != nil {
			return nil, nil
		}
		return nil, rawReader(rc)
	}
	return nil, nil
}
