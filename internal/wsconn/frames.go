package wsconn

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/coder/websocket"
)

// FrameError is a client frame refused as its header arrives, with the
// close status that names the problem.
type FrameError struct {
	Code   websocket.StatusCode
	Reason string
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("websocket frame refused (%d): %s", e.Code, e.Reason)
}

// CheckClientFrames wraps the byte stream a server reads its client's
// frames from (below coder/websocket) and fails it, with a *FrameError, at
// the header of a frame that
//   - is not masked (RFC 6455 5.1: a protocol error, 1002),
//   - claims a length with the top bit set (5.2: 1002), or
//   - would take its message past limit bytes (1009).
//
// Why below the library: it answers an unmasked frame with an error but no
// close status, which the relay's tunnel turned into 1011 (its own "tunnel
// cut"); and it counts its read limit only as payload bytes arrive, so a
// header claiming 2^63-1 bytes followed by nothing left the connection
// waiting with no answer. Conn closes with the FrameError's status when
// it reads one.
//
// The bytes before the refused header are passed on as they are, so
// frames already complete are still delivered.
func CheckClientFrames(r io.Reader, limit int64) io.Reader {
	return &frameChecker{r: r, limit: uint64(limit)}
}

type frameChecker struct {
	r     io.Reader
	limit uint64
	err   error // sticky, once a frame was refused

	hdr  [14]byte
	hn   int    // header bytes seen of the current header
	left uint64 // payload bytes of the current frame still to pass
	msg  uint64 // payload bytes of the current data message so far
	cont bool   // a data message is open (its last frame had no FIN)
}

func (f *frameChecker) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n, err := f.r.Read(p)
	for i := 0; i < n; {
		if f.left > 0 {
			skip := uint64(n - i)
			if skip > f.left {
				skip = f.left
			}
			i += int(skip)
			f.left -= skip
			continue
		}
		start := i - f.hn // where this header began, if within p
		f.hdr[f.hn] = p[i]
		f.hn++
		i++
		if f.hn < headerSize(f.hdr[:f.hn]) {
			continue
		}
		if ferr := f.header(); ferr != nil {
			f.err = ferr
			return max(start, 0), ferr
		}
	}
	return n, err
}

// headerSize is the length of the header whose first bytes are b, as far
// as b tells (2 until the second byte is known).
func headerSize(b []byte) int {
	if len(b) < 2 {
		return 2
	}
	size := 2
	switch b[1] & 0x7f {
	case 126:
		size += 2
	case 127:
		size += 8
	}
	if b[1]&0x80 != 0 {
		size += 4
	}
	return size
}

// header checks the complete header in f.hdr and sets up its payload.
func (f *frameChecker) header() error {
	h := f.hdr[:f.hn]
	f.hn = 0
	fin, op, masked := h[0]&0x80 != 0, h[0]&0x0f, h[1]&0x80 != 0
	length := uint64(h[1] & 0x7f)
	switch length {
	case 126:
		length = uint64(binary.BigEndian.Uint16(h[2:]))
	case 127:
		length = binary.BigEndian.Uint64(h[2:])
		if length>>63 != 0 {
			return &FrameError{websocket.StatusProtocolError, "frame length has its most significant bit set"}
		}
	}
	if !masked {
		return &FrameError{websocket.StatusProtocolError, "client frame is not masked"}
	}
	f.left = length
	if op >= 8 {
		return nil // control frames: the library checks their 125 bytes
	}
	if op != 0 || !f.cont {
		f.msg = 0 // a new message (the library refuses a stray continuation)
	}
	f.msg += length
	if f.msg > f.limit {
		return &FrameError{websocket.StatusMessageTooBig, fmt.Sprintf("message of at least %d bytes is over the limit of %d", f.msg, f.limit)}
	}
	f.cont = !fin
	return nil
}
