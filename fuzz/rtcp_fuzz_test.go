package fuzz

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/nanodems/connector/rtsp"
)

// FuzzRTSPContinueRTCP: the gateway walks every camera RTCP packet of a
// shared session (rtsp/continuity.go). It never panics or changes the
// length; without remap it changes nothing; with remap only a sender
// report's SSRC and RTP timestamp change; a compound packet with a BYE is
// never forwarded.
func FuzzRTSPContinueRTCP(f *testing.F) {
	sr := make([]byte, 28)
	sr[0], sr[1], sr[3] = 0x80, 200, 6
	bye := []byte{0x81, 203, 0, 1, 1, 2, 3, 4}
	for _, b := range [][]byte{sr, bye, append(append([]byte(nil), sr...), bye...), {0x80, 201, 0, 1, 0, 0, 0, 1}, {0x80, 200, 0xff, 0xff}, {}} {
		f.Add(b, uint32(0x11223344), uint32(90000), true)
	}
	f.Fuzz(func(t *testing.T, b []byte, ssrc, tsOff uint32, remap bool) {
		in := append([]byte(nil), b...)
		keep := rtsp.ContinueRTCP(b, ssrc, tsOff, remap)
		if len(b) != len(in) {
			t.Fatalf("length %d became %d", len(in), len(b))
		}
		if !remap && !bytes.Equal(b, in) {
			t.Fatal("changed without remap")
		}
		// Walk the input as the gateway should have: headers, lengths,
		// BYEs, and which bytes a sender report may change.
		may := make([]bool, len(in))
		hasBye, ok := false, len(in) >= 4
		for rest, off := in, 0; ok && len(rest) > 0; {
			if len(rest) < 4 || rest[0]>>6 != 2 {
				ok = false
				break
			}
			n := 4 * (int(binary.BigEndian.Uint16(rest[2:4])) + 1)
			if n > len(rest) {
				ok = false
				break
			}
			switch rest[1] {
			case 203:
				hasBye = true
			case 200:
				if n >= 20 {
					for i := 4; i < 8; i++ {
						may[off+i] = true
					}
					for i := 16; i < 20; i++ {
						may[off+i] = true
					}
				}
			}
			rest, off = rest[n:], off+n
		}
		if keep && (!ok || hasBye) {
			t.Fatalf("forwarded a malformed packet or a BYE: %x", in)
		}
		for i := range in {
			if b[i] != in[i] && !may[i] {
				t.Fatalf("byte %d changed outside a sender report's SSRC and timestamp", i)
			}
		}
	})
}
