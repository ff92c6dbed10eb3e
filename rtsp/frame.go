package rtsp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
)

// Interleaved binary data (RFC 2326 §10.12, RFC 7826 §14): on the RTSP
// connection itself, each RTP or RTCP packet travels as
//
//	'$' | channel u8 | length u16 (big endian) | packet [length]byte
//
// between the text messages. Channel numbers are chosen per stream at
// SETUP (interleaved=0-1: RTP on 0, RTCP on 1).
const (
	FrameHeaderLen  = 4
	MaxFramePayload = 65535
)

// Kind says what an Item is.
type Kind uint8

// Item kinds.
const (
	KindFrame Kind = iota + 1
	KindRequest
	KindResponse
)

// Item is one thing read from an RTSP byte stream.
type Item struct {
	Kind    Kind
	Channel byte
	// Frame is the whole interleaved frame, header included. It aliases
	// the parser's input: copy it before the input moves on.
	Frame []byte
	Req   *Request
	Resp  *Response
}

// Payload is the packet carried by a frame.
func (it Item) Payload() []byte { return it.Frame[FrameHeaderLen:] }

// AppendFrameHeader appends the 4-byte header of an interleaved frame.
func AppendFrameHeader(b []byte, channel byte, n int) []byte {
	return append(b, '$', channel, byte(n>>8), byte(n))
}

// ErrGarbage is returned for bytes that start neither a frame nor a
// message.
var ErrGarbage = errors.New("rtsp: bytes that are neither a message nor an interleaved frame")

// ParseItem parses the item at the start of b: an interleaved frame, a
// request or a response. CR and LF bytes before it (keepalives some
// clients send between messages) are consumed. n counts every byte used.
// ErrIncomplete means the item continues beyond b.
func ParseItem(b []byte, lim Limits) (it Item, n int, err error) {
	for n < len(b) && (b[n] == '\r' || b[n] == '\n') {
		n++
	}
	if n == len(b) {
		return it, n, ErrIncomplete
	}
	rest := b[n:]
	if rest[0] == '$' {
		if len(rest) < FrameHeaderLen {
			return it, n, ErrIncomplete
		}
		size := FrameHeaderLen + int(binary.BigEndian.Uint16(rest[2:4]))
		if len(rest) < size {
			return it, n, ErrIncomplete
		}
		return Item{Kind: KindFrame, Channel: rest[1], Frame: rest[:size:size]}, n + size, nil
	}
	if !isTokenChar(rest[0]) {
		return it, n, ErrGarbage
	}
	req, resp, m, err := ParseMessage(rest, lim)
	if err != nil {
		return it, n, err
	}
	if req != nil {
		return Item{Kind: KindRequest, Req: req}, n + m, nil
	}
	return Item{Kind: KindResponse, Resp: resp}, n + m, nil
}

func isTokenChar(c byte) bool {
	return c > 0x20 && c < 0x7f && bytes.IndexByte([]byte("()<>@,;:\\\"/[]?={}"), c) < 0
}

// Reader reads items from a byte stream (a camera connection, or a client
// connection in the goroutine-per-connection listener).
type Reader struct {
	r     io.Reader
	buf   []byte
	start int
	end   int
	max   int
	lim   Limits
	// Lenient makes the reader skip bytes that are neither a frame nor a
	// message instead of failing, up to maxGarbage in a row: some cameras
	// pad their interleaved stream, or send a stray byte after a
	// response. Client streams are read strictly.
	Lenient bool
	resync  bool // lenient: dropping bytes up to the next '$' or 'R'
}

// maxGarbage is how many stray bytes a lenient Reader skips in a row
// before it gives up on the stream.
const maxGarbage = 64 << 10

// NewReader returns a Reader with an initial buffer of size bytes; it
// grows up to what one item can need under lim.
func NewReader(r io.Reader, size int, lim Limits) *Reader {
	lim = lim.withDefaults()
	if size < 512 {
		size = 512
	}
	return &Reader{r: r, buf: make([]byte, size), lim: lim,
		max: max(FrameHeaderLen+MaxFramePayload, lim.MaxHeaderBytes+4+lim.MaxBody)}
}

// Buffered returns the bytes read but not yet returned as items.
func (r *Reader) Buffered() []byte { return r.buf[r.start:r.end] }

// Pending reports whether Next can return without reading: an item (or
// bytes a lenient reader will skip) is complete in the buffer. Owners of
// a camera connection batch their writes until it is false.
func (r *Reader) Pending() bool {
	if r.end == r.start {
		return false
	}
	if r.resync {
		return true
	}
	_, _, err := ParseItem(r.buf[r.start:r.end], r.lim)
	return !errors.Is(err, ErrIncomplete)
}

// Next returns the next item. A frame aliases the Reader's buffer and is
// valid until the next call.
func (r *Reader) Next() (Item, error) {
	skipped := 0
	for {
		if r.resync {
			// Resynchronise on the next byte that can start an item: a
			// frame ('$') or a response ("RTSP/"). Dropped bytes are gone
			// whatever arrives later, so the result does not depend on
			// how the stream was split.
			k := resync(r.buf[r.start:r.end])
			r.start += k
			skipped += k
			if r.start < r.end {
				r.resync = false
			} else if skipped > maxGarbage {
				return Item{}, ErrGarbage
			}
		}
		if !r.resync && r.end > r.start {
			it, n, err := ParseItem(r.buf[r.start:r.end], r.lim)
			switch {
			case err == nil:
				r.start += n
				return it, nil
			case errors.Is(err, ErrIncomplete):
				r.start += n // CR/LF already consumed
			case r.Lenient && (errors.Is(err, ErrGarbage) || isParseError(err)):
				r.start += n + 1
				skipped += n + 1
				r.resync = true
				if skipped > maxGarbage {
					return Item{}, err
				}
				continue
			default:
				return Item{}, err
			}
		}
		if err := r.fill(); err != nil {
			return Item{}, err
		}
	}
}

// resync returns the offset of the next byte that could start an item.
func resync(b []byte) int {
	for i, c := range b {
		if c == '$' || c == 'R' {
			return i
		}
	}
	return len(b)
}

func isParseError(err error) bool {
	var pe *ParseError
	return errors.As(err, &pe)
}

// fill reads more bytes, making room first.
func (r *Reader) fill() error {
	if r.start == r.end {
		r.start, r.end = 0, 0
	}
	if r.end == len(r.buf) {
		if r.start > 0 {
			r.end = copy(r.buf, r.buf[r.start:r.end])
			r.start = 0
		} else {
			if len(r.buf) >= r.max {
				return parseErr(400, "item larger than %d bytes", r.max)
			}
			nb := make([]byte, min(2*len(r.buf), r.max))
			r.end = copy(nb, r.buf[r.start:r.end])
			r.start = 0
			r.buf = nb
		}
	}
	n, err := r.r.Read(r.buf[r.end:])
	r.end += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}
