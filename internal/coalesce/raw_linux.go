package coalesce

import (
	"io"
	"net"
	"os"
	"syscall"

	"github.com/nanodems/connector/internal/rawio"
)

// rawSocket returns the RawConn of c's TCP socket, c itself or the one a
// Socketer wraps, so that its reads and writes can skip the runtime's
// system-call bookkeeping (package rawio); nil for any other conn.
func rawSocket(c net.Conn) syscall.RawConn {
	if s, ok := c.(Socketer); ok {
		c = s.Socket()
	}
	tc, ok := c.(*net.TCPConn)
	if !ok || tc == nil {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// read is the socket's Read, with the same results and errors as
// net.Conn's: the poller waits (and honours the read deadline) when
// the socket is empty.
func (u *under) read(p []byte) (int, error) {
	if u.rc == nil || len(p) == 0 {
		return u.Conn.Read(p)
	}
	var n int
	var err error
	if werr := u.rc.Read(func(fd uintptr) bool {
		n, err = rawio.Read(int(fd), p, u.bulk)
		return err != syscall.EAGAIN
	}); werr != nil {
		return 0, u.opError("read", werr)
	}
	if err != nil {
		return 0, u.opError("read", os.NewSyscallError("read", err))
	}
	if n == 0 {
		return 0, io.EOF
	}
	u.bulk = n > rawio.MaxRaw
	return n, nil
}

// write is the socket's Write: all of p, waiting in the poller while the
// socket's buffer is full, or an error.
func (u *under) write(p []byte) (int, error) {
	if u.rc == nil {
		return u.Conn.Write(p)
	}
	var n int
	var err error
	if werr := u.rc.Write(func(fd uintptr) bool {
		for n < len(p) {
			m, e := rawio.Write(int(fd), p[n:])
			if e == syscall.EAGAIN {
				return false
			}
			if e != nil {
				err = e
				return true
			}
			n += m
		}
		return true
	}); werr != nil {
		return n, u.opError("write", werr)
	}
	if err != nil {
		return n, u.opError("write", os.NewSyscallError("write", err))
	}
	return n, nil
}

// opError wraps err as package net does for a TCP connection's Read or
// Write.
func (u *under) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: u.LocalAddr(), Addr: u.RemoteAddr(), Err: err}
}
