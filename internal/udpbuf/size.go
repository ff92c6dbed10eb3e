package udpbuf

import (
	"fmt"
	"net"
)

// Dir is the buffer a call sizes.
type Dir int

const (
	Receive Dir = iota // SO_RCVBUF: datagrams that arrived and wait for the reader
	Send               // SO_SNDBUF: datagrams written and not yet on the wire
)

func (d Dir) String() string {
	if d == Send {
		return "send"
	}
	return "receive"
}

// Size asks for a buffer of want bytes on c and returns what the socket
// got, in the same unit (Linux reports twice the size asked, for its own
// bookkeeping; got is halved back). The system's limit
// (net.core.rmem_max / wmem_max) caps an ordinary request silently; a
// process allowed to (CAP_NET_ADMIN) then gets the size anyway, since
// losing video for want of a few MiB of buffer is the worse outcome.
// Otherwise got says what the limit left, and the caller logs it: the
// fix is the sysctl.
func Size(c *net.UDPConn, d Dir, want int) (got int, err error) {
	got, err = size(c, d, want)
	if err != nil {
		return got, fmt.Errorf("udpbuf: %s buffer of %d bytes: %w", d, want, err)
	}
	return got, nil
}
