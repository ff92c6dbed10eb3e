package relay

import (
	"net/netip"
	"strings"
)

// compareHosts orders hosts as an operator reads them: IP addresses by
// value (10.0.0.9 before 10.0.0.10), then names.
func compareHosts(a, b string) int {
	ia, ea := netip.ParseAddr(a)
	ib, eb := netip.ParseAddr(b)
	switch {
	case ea == nil && eb == nil:
		return ia.Compare(ib)
	case ea == nil:
		return -1
	case eb == nil:
		return 1
	}
	return strings.Compare(a, b)
}
