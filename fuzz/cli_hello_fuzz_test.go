package fuzz

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/nanodems/connector/mux"
)

// FuzzCLIHello feeds the relay's parser of the raw CLI transport's first
// frame (the token before smux starts): it never reads past the frame,
// never panics, fails only with ErrBadCLIHello, and what it accepts
// re-encodes to the bytes it read.
func FuzzCLIHello(f *testing.F) {
	for _, tok := range []string{"ops_" + strings.Repeat("A", 43), "x", strings.Repeat("~", mux.MaxCLITokenLen)} {
		b, err := mux.AppendCLIHello(nil, tok)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(append(b, 0, 0, 0x02, 0)) // smux behind the hello
		f.Add(b[:len(b)-1])             // truncated token
	}
	f.Add([]byte{})
	f.Add([]byte{mux.HeaderVersion})
	f.Add([]byte{2, 1, 'x'})                    // wrong version
	f.Add([]byte{mux.HeaderVersion, 0})         // empty token
	f.Add([]byte{mux.HeaderVersion, 2, 'a', 0}) // control byte
	f.Add([]byte("GET /api/cli/mux HTTP/1.1\r\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		tok, err := mux.ReadCLIHello(r)
		consumed := len(data) - r.Len()
		if consumed > 2+mux.MaxCLITokenLen {
			t.Fatalf("consumed %d bytes", consumed)
		}
		if err != nil {
			if !errors.Is(err, mux.ErrBadCLIHello) {
				t.Fatalf("error %v does not wrap ErrBadCLIHello", err)
			}
			return
		}
		b, err := mux.AppendCLIHello(nil, tok)
		if err != nil {
			t.Fatalf("accepted token %q does not encode: %v", tok, err)
		}
		if !bytes.Equal(b, data[:consumed]) {
			t.Fatalf("re-encoded %x, read %x", b, data[:consumed])
		}
	})
}

// FuzzCLIAnswer feeds the CLI's parser of the relay's answer to it.
func FuzzCLIAnswer(f *testing.F) {
	for _, a := range []mux.CLIAnswer{{Status: 200}, {Status: 401, Reason: "CLI session revoked"}, {Status: 503, Reason: strings.Repeat("r", mux.MaxReasonLen)}} {
		b := mux.AppendCLIAnswer(nil, a)
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	f.Add([]byte{})
	f.Add([]byte{mux.HeaderVersion, 0, 0, 0})       // status 0
	f.Add([]byte{mux.HeaderVersion, 0xff, 0xff, 0}) // status 65535
	f.Add([]byte("HTTP/1.1 400 Bad Request\r\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		a, err := mux.ReadCLIAnswer(r)
		consumed := len(data) - r.Len()
		if consumed > 4+mux.MaxReasonLen {
			t.Fatalf("consumed %d bytes", consumed)
		}
		if err != nil {
			if !errors.Is(err, mux.ErrBadCLIAnswer) {
				t.Fatalf("error %v does not wrap ErrBadCLIAnswer", err)
			}
			return
		}
		if a.Status < 100 || a.Status > 599 {
			t.Fatalf("status %d accepted", a.Status)
		}
		if b := mux.AppendCLIAnswer(nil, a); !bytes.Equal(b, data[:consumed]) {
			t.Fatalf("re-encoded %x, read %x", b, data[:consumed])
		}
	})
}
