package fuzz

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/nanodems/connector/internal/wsconn"
)

// FuzzClientFrames feeds arbitrary client bytes through the relay's frame
// header check (wsconn.CheckClientFrames): it never panics, passes on a
// prefix of its input unchanged, refuses only with a close status of
// 1002 or 1009, and decides the same whether the bytes arrive whole or
// one at a time.
func FuzzClientFrames(f *testing.F) {
	mask := []byte{1, 2, 3, 4}
	f.Add(append([]byte{0x82, 0x85}, append(mask, "hello"...)...)) // masked binary "hello"
	f.Add([]byte{0x82, 0x05, 'h', 'e', 'l', 'l', 'o'})             // unmasked
	f.Add([]byte{0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4})
	f.Add([]byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4})
	f.Add([]byte{0x02, 0xfe, 0x80, 0x00, 1, 2, 3, 4, 0x80, 0xfe, 0x80, 0x00, 1, 2, 3, 4})
	f.Add([]byte{0x88, 0x82, 1, 2, 3, 4, 0x03, 0xe8})
	f.Fuzz(func(t *testing.T, in []byte) {
		const limit = 1 << 10
		whole, errWhole := io.ReadAll(wsconn.CheckClientFrames(bytes.NewReader(in), limit))
		bytewise, errByte := io.ReadAll(wsconn.CheckClientFrames(iotest.OneByteReader(bytes.NewReader(in)), limit))
		if !bytes.HasPrefix(in, whole) || !bytes.HasPrefix(in, bytewise) {
			t.Fatal("the check changed bytes it passed on")
		}
		var fw, fb *wsconn.FrameError
		if (errWhole == nil) != (errByte == nil) || errors.As(errWhole, &fw) != errors.As(errByte, &fb) {
			t.Fatalf("whole: %v; one byte at a time: %v", errWhole, errByte)
		}
		if fw != nil && (fw.Code != 1002 && fw.Code != 1009 || fw.Code != fb.Code) {
			t.Fatalf("refused with %d and %d", fw.Code, fb.Code)
		}
		if errWhole == nil && len(whole) != len(in) {
			t.Fatalf("passed %d of %d bytes and no error", len(whole), len(in))
		}
	})
}
