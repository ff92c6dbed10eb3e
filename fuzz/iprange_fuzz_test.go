package fuzz

import (
	"testing"

	"github.com/nanodems/connector/internal/iprange"
)

// FuzzRange: a bulk-add range is parsed into at most MaxAddrs IPv4
// addresses, in order, that print back to an equal range; or refused.
func FuzzRange(f *testing.F) {
	for _, s := range []string{"10.0.0.7", "10.0.0.1-10.0.0.10", " 10.0.0.1 - 10.0.3.255 ", "192.168.1.0/24", "10.1.0.0/22",
		"10.0.0.0/21", "10.0.0.9-10.0.0.1", "0.0.0.0/0", "255.255.255.255/32", "2001:db8::/120", "a-b", "1.2.3.4/", "-", "/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := iprange.Parse(s)
		if err != nil {
			return
		}
		n := r.Len()
		if n < 1 || n > iprange.MaxAddrs || !r.First.Is4() || !r.Last.Is4() || r.Last.Less(r.First) {
			t.Fatalf("%q: %s holds %d addresses", s, r, n)
		}
		addrs := r.Addrs()
		if len(addrs) != n || addrs[0] != r.First || addrs[n-1] != r.Last {
			t.Fatalf("%q: %d addresses listed from %v to %v", s, len(addrs), addrs[0], addrs[len(addrs)-1])
		}
		back, err := iprange.Parse(r.String())
		if err != nil || back != r {
			t.Fatalf("%q: %s reads back as %v, %v", s, r, back, err)
		}
	})
}
