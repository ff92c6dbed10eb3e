package wsconn

import (
	"encoding/binary"
	"net"
	"sync"
)

// CoalesceFrames wraps the connection under a WebSocket client (the TLS
// connection the HTTP transport dials) so that every frame reaches it in
// one Write.
//
// Why: coder/websocket's client masks payloads inside its 4 KiB bufio
// buffer and flushes it whenever it is full, so a 64 KiB message became
// 17 TLS records and 17 write system calls at the client, and as many
// records for the relay to open. Collected here, the frame leaves as one
// Write: four full 16 KiB records. The library has no option for the
// buffer size, and its buffer must stay small-ish anyway (it is pooled
// per connection), so the frame is put together one layer down, with a
// pooled buffer held only while a frame is in flight: an idle connection
// holds none. docs/perf-bench.md has the before/after figures.
//
// The wrapper reads the frame header of each Write that starts a frame to
// learn how many bytes the frame has, and holds the pieces until it is
// whole. coder/websocket writes each frame under its write lock and
// flushes at the frame's end, so a frame's pieces arrive in order and no
// Write holds parts of two frames. Anything else, such as the HTTP request
// of the upgrade (a first byte with a reserved bit set, which no frame of
// an uncompressed connection has), goes through untouched; a Write that
// breaks those rules switches the wrapper to pass everything through.
func CoalesceFrames(c net.Conn) net.Conn { return &coalescer{Conn: c} }

// maxCoalesced is the largest frame collected: a batch of smux frames
// (third_party/smux writes up to 256 KiB plus one 64 KiB frame at once),
// plus a client frame header (14).
const maxCoalesced = 320<<10 + 64

var framePool = sync.Pool{New: func() any { b := make([]byte, maxCoalesced); return &b }}

type coalescer struct {
	net.Conn
	mu   sync.Mutex
	pass bool    // not a frame stream after all: every Write goes through
	buf  *[]byte // the frame being collected (nil: none, or one too big)
	n    int     // bytes in buf
	need int     // bytes of the current frame still to come
}

func (c *coalescer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pass || len(p) == 0 {
		return c.Conn.Write(p)
	}
	if c.need == 0 {
		total, ok := frameSize(p)
		switch {
		case !ok:
			if len(p) > 0 && p[0]&0x70 == 0 {
				// Looks like a frame but its header is cut: stop guessing.
				c.pass = true
			}
			return c.Conn.Write(p)
		case total < len(p):
			c.pass = true // more than one frame in a Write
			return c.Conn.Write(p)
		case total == len(p):
			return c.Conn.Write(p)
		case total > maxCoalesced:
			// Too big to collect: its pieces go through as they come.
			c.need = total - len(p)
			return c.Conn.Write(p)
		}
		c.buf = framePool.Get().(*[]byte)
		c.n = copy(*c.buf, p)
		c.need = total - len(p)
		return len(p), nil
	}
	if len(p) > c.need {
		// A Write runs past the frame: flush what we hold and give up.
		c.pass = true
		if err := c.flush(); err != nil {
			return 0, err
		}
		return c.Conn.Write(p)
	}
	c.need -= len(p)
	if c.buf == nil {
		return c.Conn.Write(p)
	}
	c.n += copy((*c.buf)[c.n:], p)
	if c.need > 0 {
		return len(p), nil
	}
	if err := c.flush(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// flush writes the collected bytes and returns the buffer to the pool.
func (c *coalescer) flush() error {
	if c.buf == nil {
		return nil
	}
	_, err := c.Conn.Write((*c.buf)[:c.n])
	framePool.Put(c.buf)
	c.buf, c.n = nil, 0
	return err
}

// frameSize parses the WebSocket frame header at the start of p and
// returns the whole frame's size. It reports false if p does not start
// with a complete header of an uncompressed frame.
func frameSize(p []byte) (int, bool) {
	if len(p) < 2 || p[0]&0x70 != 0 {
		return 0, false
	}
	switch p[0] & 0x0f {
	case 0, 1, 2, 8, 9, 10:
	default:
		return 0, false
	}
	hdr := 2
	n := uint64(p[1] & 0x7f)
	switch n {
	case 126:
		hdr += 2
		if len(p) < hdr {
			return 0, false
		}
		n = uint64(binary.BigEndian.Uint16(p[2:]))
	case 127:
		hdr += 8
		if len(p) < hdr {
			return 0, false
		}
		n = binary.BigEndian.Uint64(p[2:])
		if n > 1<<40 {
			return 0, false
		}
	}
	if p[1]&0x80 != 0 {
		hdr += 4 // masking key
	}
	if len(p) < hdr {
		return 0, false
	}
	return hdr + int(n), true
}
