//go:build !linux

package udpbuf

import "net"

// size asks; other systems do not say what they gave, so got is what was
// asked when the call succeeded.
func size(c *net.UDPConn, d Dir, want int) (int, error) {
	var err error
	if d == Send {
		err = c.SetWriteBuffer(want)
	} else {
		err = c.SetReadBuffer(want)
	}
	if err != nil {
		return 0, err
	}
	return want, nil
}
