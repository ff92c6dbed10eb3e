package fuzz

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/nanodems/connector/mux"
)

func FuzzStatus(f *testing.F) {
	for _, s := range []struct {
		code   mux.Code
		reason string
	}{
		{mux.OK, ""},
		{mux.Refused, "dial tcp 10.0.0.7:554: connection refused"},
		{mux.NotAllowed, ""},
		{mux.AgentError, strings.Repeat("x", mux.MaxReasonLen)},
	} {
		var b bytes.Buffer
		if err := mux.WriteStatus(&b, s.code, s.reason); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
		f.Add(b.Bytes()[:b.Len()-1])
	}
	f.Add([]byte{})
	f.Add([]byte{mux.HeaderVersion, 0})                   // truncated
	f.Add([]byte{2, 0, 0})                                // wrong version
	f.Add([]byte{mux.HeaderVersion, 7, 0})                // unknown code
	f.Add([]byte{mux.HeaderVersion, 255, 2, 'h', 'i'})    // unknown code with reason
	f.Add([]byte{mux.HeaderVersion, 0, 3, 'o', 'k', '!'}) // OK with a reason

	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		err := mux.ReadStatus(r)
		consumed := len(data) - r.Len()
		if consumed > 3+mux.MaxReasonLen {
			t.Fatalf("consumed %d bytes", consumed)
		}
		var se *mux.StatusError
		code := mux.OK
		switch {
		case err == nil:
		case errors.As(err, &se):
			if se.Code < mux.Refused || se.Code > mux.AgentError {
				t.Fatalf("status error with code %d, want a known non-OK code", se.Code)
			}
			code = se.Code
		case errors.Is(err, mux.ErrBadStatus):
			return
		default:
			t.Fatalf("error %v is neither a StatusError nor ErrBadStatus", err)
		}
		if want := 3 + int(data[2]); consumed != want {
			t.Fatalf("consumed %d bytes, status is %d", consumed, want)
		}
		reason := string(data[3:consumed])
		if se != nil && se.Reason != reason {
			t.Fatalf("reason %q, wire has %q", se.Reason, reason)
		}
		var b bytes.Buffer
		if err := mux.WriteStatus(&b, code, reason); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b.Bytes(), data[:consumed]) {
			t.Fatalf("re-encoded %x, read %x", b.Bytes(), data[:consumed])
		}
	})
}
