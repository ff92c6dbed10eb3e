package udpbuf

import (
	"net"

	"golang.org/x/sys/unix"
)

func size(c *net.UDPConn, d Dir, want int) (int, error) {
	opt, force := unix.SO_RCVBUF, unix.SO_RCVBUFFORCE
	if d == Send {
		opt, force = unix.SO_SNDBUF, unix.SO_SNDBUFFORCE
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var got int
	var serr error
	err = rc.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, want); serr != nil {
			return
		}
		if got, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, opt); serr != nil {
			return
		}
		if got/2 >= want {
			return
		}
		// Capped by the sysctl: try past it. EPERM without
		// CAP_NET_ADMIN, and then what the cap left stands.
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, force, want) == nil {
			got, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, opt)
		}
	})
	if err == nil {
		err = serr
	}
	return got / 2, err
}
