// Package iprange parses the address ranges an operator types to bulk add
// cameras: a single IPv4 address, a range a.b.c.d-e.f.g.h, or a CIDR
// prefix. A range is bounded (MaxAddrs) so that one request cannot ask an
// agent to sweep a whole private network.
package iprange

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// MaxAddrs is the most addresses one range may hold: a /22.
const MaxAddrs = 1024

// ErrTooLarge is wrapped when a range holds more than MaxAddrs addresses.
var ErrTooLarge = errors.New("range too large")

// Range is the IPv4 addresses First through Last, both included.
type Range struct {
	First, Last netip.Addr
}

// maxInput bounds what Parse reads: the longest valid input is two dotted
// quads and a dash.
const maxInput = 64

// Parse reads s as an IPv4 address, a range "a.b.c.d-e.f.g.h" (spaces
// around the dash allowed) or a CIDR "a.b.c.d/n". A CIDR covers its whole
// prefix, network and broadcast addresses excluded when it has more than
// two. It refuses IPv6, reversed ranges and ranges of more than MaxAddrs
// addresses, each with a one-line reason.
func Parse(s string) (Range, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Range{}, errors.New("empty range: give an IP address, a range a.b.c.d-e.f.g.h or a CIDR a.b.c.d/n")
	}
	if len(s) > maxInput {
		return Range{}, fmt.Errorf("range %.20q… is too long to be an address range", s)
	}
	var r Range
	switch {
	case strings.Contains(s, "/"):
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return Range{}, fmt.Errorf("%q is not a CIDR a.b.c.d/n", s)
		}
		if !p.Addr().Is4() {
			return Range{}, fmt.Errorf("CIDR %q: only IPv4 ranges can be probed", s)
		}
		if bits := 32 - p.Bits(); bits > 10 {
			return Range{}, fmt.Errorf("%w: %s holds %d addresses; at most %d (a /22) per request", ErrTooLarge, s, uint64(1)<<bits, MaxAddrs)
		}
		p = p.Masked()
		r.First = p.Addr()
		r.Last = fromUint(toUint(r.First) | (1<<(32-p.Bits()) - 1))
		if p.Bits() < 31 { // network and broadcast addresses are no hosts
			r.First, r.Last = r.First.Next(), r.Last.Prev()
		}
	case strings.Contains(s, "-"):
		a, b, _ := strings.Cut(s, "-")
		first, err := parse4(strings.TrimSpace(a))
		if err != nil {
			return Range{}, err
		}
		last, err := parse4(strings.TrimSpace(b))
		if err != nil {
			return Range{}, err
		}
		if last.Less(first) {
			return Range{}, fmt.Errorf("range %q ends before it starts", s)
		}
		r = Range{first, last}
		if n := uint64(toUint(last)) - uint64(toUint(first)) + 1; n > MaxAddrs {
			return Range{}, fmt.Errorf("%w: %s holds %d addresses; at most %d (a /22) per request", ErrTooLarge, s, n, MaxAddrs)
		}
	default:
		a, err := parse4(s)
		if err != nil {
			return Range{}, err
		}
		r = Range{a, a}
	}
	return r, nil
}

func parse4(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IPv4 address", s)
	}
	if !a.Is4() {
		return netip.Addr{}, fmt.Errorf("%s: only IPv4 ranges can be probed", s)
	}
	return a, nil
}

// Len is how many addresses r holds.
func (r Range) Len() int {
	return int(toUint(r.Last) - toUint(r.First) + 1)
}

// Addrs returns every address of r, in order.
func (r Range) Addrs() []netip.Addr {
	out := make([]netip.Addr, 0, r.Len())
	for a := r.First; ; a = a.Next() {
		out = append(out, a)
		if a == r.Last {
			return out
		}
	}
}

// String is r as Parse reads it back.
func (r Range) String() string {
	if r.First == r.Last {
		return r.First.String()
	}
	return r.First.String() + "-" + r.Last.String()
}

func toUint(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func fromUint(u uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)})
}
