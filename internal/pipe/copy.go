package pipe

import (
	"io"
	"sync/atomic"
	"syscall"
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
	fw, framed := dst.(FrameWriter)
	header, maxPayload := 0, BufSize
	if framed {
		header, maxPayload = fw.FrameLayout()
	}
	payload := min(maxPayload, BufSize-header)
	small := min(maxPayload, SmallBufSize-header)
	wait, raw := readWaiterOf(src)
	var total int64
	var err error
	full := false // the last read filled the buffer: more is likely queued
	bulk := false // the last read brought at least a small buffer's worth
	for {
		size := small
		if bulk {
			size = payload
		}
		var bp *[]byte
		var n int
		var rerr error
		if raw != nil {
			if bp, n, rerr = raw(header, size); bp == nil {
				err = rerr
				break
			}
		} else {
			if wait != nil && !full {
				if werr := wait(); werr != nil {
					if werr != io.EOF {
						err = werr
					}
					break
				}
			}
			bp = GetBufFor(header + size)
			n, rerr = src.Read((*bp)[header : header+size])
		}
		buf := (*bp)[header : header+size]
		var werr error
		if n > 0 {
			if count != nil {
				count.Add(uint64(n))
			}
			if framed {
				werr = fw.WriteFrame((*bp)[:header+n])
			} else {
				_, werr = dst.Write(buf[:n])
			}
			if werr == nil {
				total += int64(n)
			}
		}
		full = n == len(buf)
		bulk = n >= small
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
