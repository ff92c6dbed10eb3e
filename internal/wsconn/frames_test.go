package wsconn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/coder/websocket"
)

func checkedFrame(b0 byte, payload []byte, masked bool) []byte {
	f := []byte{b0}
	var m byte
	if masked {
		m = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		f = append(f, m|byte(n))
	case n < 1<<16:
		f = append(f, m|126)
		f = binary.BigEndian.AppendUint16(f, uint16(n))
	default:
		f = append(f, m|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	if masked {
		f = append(f, 9, 8, 7, 6)
	}
	return append(f, payload...)
}

// The checker passes valid frames byte for byte, however the stream is
// cut, and stops at the header of the first refused one.
func TestCheckClientFrames(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 70401)
	valid := bytes.Join([][]byte{
		checkedFrame(0x82, []byte("ping"), true),
		checkedFrame(0x89, []byte("p"), true),    // ping
		checkedFrame(0x02, big[:300], true),      // a message of three frames
		checkedFrame(0x00, big[:70000], true),    // 64-bit length
		checkedFrame(0x80, big[:100], true),      // its last frame
		checkedFrame(0x82, big[:100], true),      // a new message restarts the count
		checkedFrame(0x88, []byte{3, 232}, true), // close
	}, nil)
	for _, tc := range []struct {
		name    string
		ok, bad []byte // frames that pass, then the refused one
		code    websocket.StatusCode
	}{
		{"valid only", nil, nil, 0},
		{"unmasked", nil, checkedFrame(0x82, []byte("x"), false), websocket.StatusProtocolError},
		{"too big", nil, checkedFrame(0x82, big[:70401], true), websocket.StatusMessageTooBig},
		{"too big across frames", checkedFrame(0x02, big[:40000], true), checkedFrame(0x80, big[:30401], true), websocket.StatusMessageTooBig},
		{"top bit", nil, []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, websocket.StatusProtocolError},
	} {
		valid := append(bytes.Clone(valid), tc.ok...)
		for _, oneByte := range []bool{false, true} {
			all := append(bytes.Clone(valid), tc.bad...)
			var r io.Reader = bytes.NewReader(all)
			if oneByte {
				r = iotest.OneByteReader(r)
			}
			got, err := io.ReadAll(CheckClientFrames(r, 70400))
			var fe *FrameError
			switch {
			case tc.code == 0 && err != nil:
				t.Errorf("%s: %v", tc.name, err)
			case tc.code != 0 && (!errors.As(err, &fe) || fe.Code != tc.code):
				t.Errorf("%s (one byte at a time: %v): error %v, want status %d", tc.name, oneByte, err, tc.code)
			}
			// What passes is the stream's start, all the valid frames and
			// no payload of a refused one.
			if !bytes.HasPrefix(all, got) || len(got) < len(valid) || len(got) > len(valid)+14 {
				t.Errorf("%s (one byte at a time: %v): passed %d bytes, want the %d valid ones (and at most a header)", tc.name, oneByte, len(got), len(valid))
			}
		}
	}
}
