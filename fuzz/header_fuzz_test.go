package fuzz

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/nanodems/connector/mux"
)

func FuzzHeader(f *testing.F) {
	for _, h := range []mux.Header{
		{Host: "10.0.0.7", Port: 554},
		{Host: "cam-1.site.lan", Port: 80, Flags: mux.FlagDedicated},
		{Host: strings.Repeat("a", mux.MaxHostLen), Port: 65535, Flags: 0xff},
	} {
		b, err := mux.AppendHeader(nil, h)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(append(b, "GET / HTTP/1.1\r\n"...)) // payload after the header
		f.Add(b[:len(b)-1])                       // truncated host
		f.Add(b[:3])                              // truncated fixed part
		wrong := bytes.Clone(b)
		wrong[0] = 2 // unknown version
		f.Add(wrong)
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 80, 0})                                        // empty host
	f.Add([]byte{1, 0, 0, 0, 1, 'h'})                                    // port 0
	f.Add([]byte{1, 0, 0, 80, 2, 'h', ' '})                              // space in host
	f.Add([]byte{1, 0, 0, 80, 1, 0x80})                                  // non-ASCII host
	f.Add(append([]byte{1, 0, 0, 80, 255}, strings.Repeat("h", 300)...)) // host over MaxHostLen

	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		h, err := mux.ReadHeader(r)
		consumed := len(data) - r.Len()
		if consumed > 5+255 {
			t.Fatalf("consumed %d bytes, a header is at most %d", consumed, 5+255)
		}
		// A reader that hands out one byte at a time must give the same answer.
		h1, err1 := mux.ReadHeader(iotest.OneByteReader(bytes.NewReader(data)))
		if h1 != h || (err == nil) != (err1 == nil) {
			t.Fatalf("one-byte reader: %+v, %v; whole reader: %+v, %v", h1, err1, h, err)
		}
		if err != nil {
			if !errors.Is(err, mux.ErrBadHeader) {
				t.Fatalf("error %v does not wrap ErrBadHeader", err)
			}
			return
		}
		if want := 5 + len(h.Host); consumed != want {
			t.Fatalf("consumed %d bytes, header is %d", consumed, want)
		}
		enc, err := mux.AppendHeader(nil, h)
		if err != nil {
			t.Fatalf("AppendHeader(%+v) after a successful read: %v", h, err)
		}
		if !bytes.Equal(enc, data[:consumed]) {
			t.Fatalf("re-encoded %x, read %x", enc, data[:consumed])
		}
	})
}
