package pipe

import (
	"os"
	"syscall"
)

// socketWaiter waits for a socket to be readable by peeking one byte in
// the runtime's poller, so nothing is consumed and no buffer is held. It
// honours the conn's read deadline. One is made per Copy, so that waiting
// allocates nothing per chunk.
//
// A peek does consume a pending socket error: after a reset, the peek gets
// ECONNRESET and the Read after it would see a clean EOF. So the error is
// returned by wait, and Copy ends with it instead of half-closing its
// destination as if the source had finished.
type socketWaiter struct {
	rc      syscall.RawConn
	peekFn  func(fd uintptr) bool
	peekErr error
}

func waitReadable(rc syscall.RawConn) func() error {
	w := &socketWaiter{rc: rc}
	w.peekFn = w.peek
	return w.wait
}

func (w *socketWaiter) wait() error {
	w.peekErr = nil
	if err := w.rc.Read(w.peekFn); err != nil {
		return err
	}
	if w.peekErr != nil {
		return os.NewSyscallError("recvfrom", w.peekErr)
	}
	return nil
}

func (w *socketWaiter) peek(fd uintptr) bool {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	if err == syscall.EAGAIN || err == syscall.EINTR {
		return false
	}
	if err != syscall.ENOTSOCK { // a pipe (stdin) cannot be peeked: its Read waits
		w.peekErr = err
	}
	return true
}
