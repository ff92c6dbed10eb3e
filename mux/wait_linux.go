package mux

import "syscall"

// waitReadable blocks in the runtime's poller until the socket has data,
// EOF or an error, peeking one byte so nothing is consumed. It honours the
// conn's read deadline.
func waitReadable(rc syscall.RawConn) error {
	return rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return err != syscall.EAGAIN && err != syscall.EINTR
	})
}
