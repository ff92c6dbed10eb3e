package pipe

import (
	"io"
	"os"
	"syscall"

	"github.com/nanodems/connector/internal/rawio"
)

// socketReader reads a socket inside the runtime's poller (RawConn.Read),
// taking a pooled buffer only for the read attempt itself: an attempt
// that finds nothing puts the buffer back before the goroutine parks, so
// an idle direction holds none. It is one system call per chunk where a
// wait (peek one byte) and then a Read took two, and a chunk that is
// already queued costs no wait at all. It honours the conn's read
// deadline. One is made per Copy, so that reading allocates nothing per
// chunk.
type socketReader struct {
	rc     syscall.RawConn
	fn     func(fd uintptr) bool
	header int // bytes left in front of the payload (FrameWriter)
	size   int // the payload's room
	bp     *[]byte
	n      int
	err    error
	bulk   bool // the last read brought more than rawio.MaxRaw
}

func rawReader(rc syscall.RawConn) func(header, size int) (*[]byte, int, error) {
	r := &socketReader{rc: rc}
	r.fn = r.attempt
	return r.read
}

// read returns a pooled buffer with n payload bytes at [header:], or a nil
// buffer and the error of a wait (deadline, closed conn). A reset or other
// socket error comes with its buffer, n = 0; the end of the stream is n = 0
// and io.EOF.
func (r *socketReader) read(header, size int) (*[]byte, int, error) {
	r.header, r.size, r.bp, r.n, r.err = header, size, nil, 0, nil
	if err := r.rc.Read(r.fn); err != nil {
		if r.bp != nil {
			PutBuf(r.bp)
		}
		return nil, 0, err
	}
	return r.bp, r.n, r.err
}

func (r *socketReader) attempt(fd uintptr) bool {
	bp := GetBufFor(r.header + r.size)
	for {
		n, err := rawio.Read(int(fd), (*bp)[r.header:r.header+r.size], r.bulk)
		r.bulk = n > rawio.MaxRaw
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			PutBuf(bp)
			return false // park until the poller says readable
		case err != nil:
			r.bp, r.err = bp, os.NewSyscallError("read", err)
		case n == 0:
			r.bp, r.err = bp, io.EOF
		default:
			r.bp, r.n = bp, n
		}
		return true
	}
}

// socketWriter writes to a socket without waiting (RawConn.Write with one
// attempt): it returns how much the socket took, which may be less than
// asked, or nothing.
type socketWriter struct {
	rc  syscall.RawConn
	fn  func(fd uintptr) bool
	b   []byte
	n   int
	err error
}

func newSocketWriter(rc syscall.RawConn) *socketWriter {
	w := &socketWriter{rc: rc}
	w.fn = w.attempt
	return w
}

func (w *socketWriter) write(b []byte) (int, error) {
	w.b, w.n, w.err = b, 0, nil
	if err := w.rc.Write(w.fn); err != nil {
		return w.n, err
	}
	w.b = nil
	return w.n, w.err
}

func (w *socketWriter) attempt(fd uintptr) bool {
	for w.n < len(w.b) {
		n, err := rawio.Write(int(fd), w.b[w.n:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return true // the rest waits for step, on the pump's goroutine
		case err != nil:
			w.err = os.NewSyscallError("write", err)
			return true
		}
		w.n += n
	}
	return true
}
