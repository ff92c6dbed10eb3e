package udpbuf

import (
	"net"
	"net/netip"
)

// Reader reads datagrams from one socket and keeps the count of those
// the socket dropped (its receive buffer was full), where the system
// tells it (Linux, SO_RXQ_OVFL). One goroutine reads.
type Reader struct {
	c     *net.UDPConn
	oob   []byte
	last  uint32 // the kernel's counter, which wraps
	drops uint64
}

// NewReader turns drop counting on for c. Where the system cannot count,
// the Reader still reads and Drops stays 0.
func NewReader(c *net.UDPConn) *Reader {
	r := &Reader{c: c}
	if countDrops(c) == nil {
		r.oob = make([]byte, 64)
	}
	return r
}

// ReadFrom reads one datagram into b.
func (r *Reader) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	if r.oob == nil {
		return r.c.ReadFromUDPAddrPort(b)
	}
	n, oobn, _, from, err := r.c.ReadMsgUDPAddrPort(b, r.oob)
	if err == nil && oobn > 0 {
		if d, ok := parseDrops(r.oob[:oobn]); ok {
			r.drops += uint64(d - r.last)
			r.last = d
		}
	}
	return n, from, err
}

// Drops is how many datagrams the socket dropped since it was opened, as
// of the last datagram read (the system reports it with the datagrams
// that follow a drop).
func (r *Reader) Drops() uint64 { return r.drops }
