package mux_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/nanodems/connector/mux"
)

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []mux.Header{
		{Host: "10.0.0.7", Port: 554},
		{Host: "cam-1.site.lan", Port: 80, Flags: mux.FlagDedicated},
		{Host: "[fe80::1%eth0]", Port: 1},
		{Host: strings.Repeat("a", mux.MaxHostLen), Port: 65535, Flags: 0xff},
	} {
		var w countingWriter
		if err := mux.WriteHeader(&w, h); err != nil {
			t.Fatalf("WriteHeader(%+v): %v", h, err)
		}
		if w.writes != 1 {
			t.Errorf("WriteHeader(%+v) made %d writes, want 1", h, w.writes)
		}
		want, _ := mux.AppendHeader([]byte("prefix"), h)
		if !bytes.Equal(want[len("prefix"):], w.Bytes()) {
			t.Errorf("AppendHeader and WriteHeader disagree: %x vs %x", want, w.Bytes())
		}
		w.WriteString("payload")
		got, err := mux.ReadHeader(&w)
		if err != nil || got != h {
			t.Fatalf("ReadHeader = %+v, %v; want %+v", got, err, h)
		}
		if rest := w.String(); rest != "payload" {
			t.Errorf("ReadHeader left %q, want the payload", rest)
		}
	}
}

func TestHeaderInvalid(t *testing.T) {
	for name, h := range map[string]mux.Header{
		"empty host":   {Port: 80},
		"port 0":       {Host: "cam"},
		"long host":    {Host: strings.Repeat("a", mux.MaxHostLen+1), Port: 80},
		"space":        {Host: "cam 1", Port: 80},
		"control byte": {Host: "cam\n", Port: 80},
		"DEL":          {Host: "cam\x7f", Port: 80},
		"non-ASCII":    {Host: "kamera-ü", Port: 80},
	} {
		b, err := mux.AppendHeader([]byte("x"), h)
		if !errors.Is(err, mux.ErrBadHeader) || string(b) != "x" {
			t.Errorf("%s: AppendHeader = %q, %v; want b unchanged and ErrBadHeader", name, b, err)
		}
		var w bytes.Buffer
		if err := mux.WriteHeader(&w, h); !errors.Is(err, mux.ErrBadHeader) || w.Len() != 0 {
			t.Errorf("%s: WriteHeader wrote %d bytes, %v", name, w.Len(), err)
		}
	}
}

func TestReadHeaderErrors(t *testing.T) {
	for name, in := range map[string]string{
		"empty":          "",
		"short fixed":    "\x01\x00\x00",
		"version 0":      "\x00\x00\x00\x50\x03cam",
		"version 2":      "\x02\x00\x00\x50\x03cam",
		"truncated host": "\x01\x00\x00\x50\x05cam",
		"empty host":     "\x01\x00\x00\x50\x00",
		"port 0":         "\x01\x00\x00\x00\x03cam",
		"host of 254":    "\x01\x00\x00\x50\xfe" + strings.Repeat("a", 254),
		"space in host":  "\x01\x00\x00\x50\x03c m",
	} {
		h, err := mux.ReadHeader(strings.NewReader(in))
		if !errors.Is(err, mux.ErrBadHeader) || h != (mux.Header{}) {
			t.Errorf("%s: ReadHeader = %+v, %v; want ErrBadHeader", name, h, err)
		}
	}
}

// ReadHeader must not read past the header even from a reader that would
// hand out more in one call.
func TestReadHeaderExact(t *testing.T) {
	in := "\x01\x00\x02\x2a\x03camREST"
	r := strings.NewReader(in)
	h, err := mux.ReadHeader(r)
	if err != nil || h != (mux.Header{Host: "cam", Port: 554}) {
		t.Fatalf("ReadHeader = %+v, %v", h, err)
	}
	if rest, _ := io.ReadAll(r); string(rest) != "REST" {
		t.Fatalf("left %q, want REST", rest)
	}
}

type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}
