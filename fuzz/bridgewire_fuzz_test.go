package fuzz

import (
	"bytes"
	"errors"
	"testing"

	"github.com/nanodems/connector/relay/bridgewire"
)

// FuzzBridgeOpen: an open from another relay parses or fails with
// ErrBadOpen, never panics, and what parses writes back to the same bytes.
func FuzzBridgeOpen(f *testing.F) {
	for _, o := range []bridgewire.Open{
		{Handle: "h-AAAAAAAAAAAAAAAAAAAAAA", Agent: "a-1", Flags: 0},
		{Handle: "h", Agent: "", Flags: 0xff},
	} {
		b, err := bridgewire.AppendOpen(nil, o)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	f.Add([]byte{})
	f.Add([]byte{2, 0, 1, 'h', 0})
	f.Add([]byte{bridgewire.Version, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		o, err := bridgewire.ReadOpen(r)
		if err != nil {
			if !errors.Is(err, bridgewire.ErrBadOpen) {
				t.Fatalf("error %v does not wrap ErrBadOpen", err)
			}
			return
		}
		out, err := bridgewire.AppendOpen(nil, o)
		if err != nil {
			t.Fatalf("parsed %+v does not write back: %v", o, err)
		}
		if n := len(b) - r.Len(); !bytes.Equal(out, b[:n]) {
			t.Fatalf("%x parsed as %+v, written back as %x", b[:n], o, out)
		}
	})
}

// FuzzBridgeStatus: a status parses or fails with ErrBadStatus.
func FuzzBridgeStatus(f *testing.F) {
	f.Add(bridgewire.AppendStatus(nil, 0, "udp 40000-40001"))
	f.Add(bridgewire.AppendStatus(nil, 4, ": connection refused"))
	f.Add([]byte{1, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		code, reason, err := bridgewire.ReadStatus(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, bridgewire.ErrBadStatus) {
				t.Fatalf("error %v does not wrap ErrBadStatus", err)
			}
			return
		}
		if out := bridgewire.AppendStatus(nil, code, reason); !bytes.Equal(out, b[:len(out)]) {
			t.Fatalf("%x written back as %x", b, out)
		}
	})
}
