package fuzz

import (
	"bytes"
	"strings"
	"testing"

	"github.com/nanodems/connector/netstack"
)

// FuzzReport feeds the CLI's parser of the namespace helper's report (the
// message that comes with the TUN descriptor): it must never panic, and
// whatever it accepts must be exactly what AppendReport writes for the
// result, so no two byte strings mean the same report.
func FuzzReport(f *testing.F) {
	for _, r := range []netstack.Report{
		{MTU: netstack.MTU, Name: "nanodems0"},
		{MTU: 1500, Name: "t"},
		{Err: "cannot open /dev/net/tun: permission denied"},
		{Err: strings.Repeat("x", 4096)},
	} {
		b := netstack.AppendReport(nil, r)
		f.Add(b)
		f.Add(b[:len(b)-1]) // truncated
		f.Add(append(bytes.Clone(b), 0))
	}
	f.Add([]byte{})
	f.Add([]byte("NDNS"))
	f.Add([]byte("NDNS\x02\x00\x00\x00\xff\xff\x01a\x00\x00"))      // unknown version
	f.Add([]byte("NDNS\x01\x01\x00\x00\x00\x00\x00\x00\x00"))       // failure without a reason
	f.Add([]byte("NDNS\x01\x00\x00\x00\xff\xff\x00\x00\x00"))       // success without a name
	f.Add([]byte("NDNS\x01\x00\x00\x01\x00\x00\x01a\x00\x00"))      // MTU over 65535
	f.Add([]byte("NDNS\x01\x00\x00\x00\xff\xff\x05ab\x00\x00"))     // name length past the end
	f.Add([]byte("NDNS\x01\x01\x00\x00\x00\x00\x00\xff\xffabcdef")) // error length past the end

	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := netstack.ParseReport(data)
		if err != nil {
			return
		}
		if got := netstack.AppendReport(nil, r); !bytes.Equal(got, data) {
			t.Fatalf("accepted %q as %+v, which encodes as %q", data, r, got)
		}
		if (r.Err == "") == (r.Name == "" && r.MTU == 0) {
			t.Fatalf("accepted an ambiguous report %+v", r)
		}
	})
}
