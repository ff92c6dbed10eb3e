// Package localaddr tells the addresses a device must not name by default:
// those that reach the agent's (or the relay's) own host, or a cloud
// provider's metadata service, rather than a camera on the LAN.
//
// The relay checks a device's host with Host when it is stored; the agent
// checks every address it actually dials with Addr, which also covers a
// host name that resolves (or is rebound) to such an address.
package localaddr

import (
	"net/netip"
	"strings"
)

// Kinds of local address.
const (
	Loopback    = "loopback"
	LinkLocal   = "link-local"
	Metadata    = "cloud metadata"
	Unspecified = "unspecified"
	Multicast   = "multicast"
	Broadcast   = "broadcast"
)

// metadata holds cloud instance-metadata endpoints outside the link-local
// ranges (or inside them but worth naming): a device there would hand an
// instance's credentials to whoever opens its tunnel.
var metadata = map[netip.Addr]bool{
	netip.MustParseAddr("169.254.169.254"): true, // AWS, GCP, Azure, OpenStack …
	netip.MustParseAddr("169.254.170.2"):   true, // AWS ECS task metadata
	netip.MustParseAddr("fd00:ec2::254"):   true, // AWS IMDS over IPv6 (a ULA, not link-local)
	netip.MustParseAddr("100.100.100.200"): true, // Alibaba Cloud
}

// thisNetwork is 0.0.0.0/8: Linux connects 0.0.0.0 to the host itself.
var thisNetwork = netip.MustParsePrefix("0.0.0.0/8")

// Addr returns the kind of a, or "" when a is an ordinary unicast address.
// An IPv4-mapped IPv6 address is judged as its IPv4 address.
func Addr(a netip.Addr) string {
	a = a.Unmap().WithZone("")
	switch {
	case !a.IsValid():
		return ""
	case metadata[a]:
		return Metadata
	case a.IsLoopback():
		return Loopback
	case a.IsLinkLocalUnicast():
		return LinkLocal
	case a.IsUnspecified(), a.Is4() && thisNetwork.Contains(a):
		return Unspecified
	case a.IsMulticast():
		return Multicast
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return Broadcast
	}
	return ""
}

// Host returns the kind of a device host as stored: a literal IP address
// by Addr, and "localhost" or a name under .localhost (RFC 6761: always
// loopback) as Loopback. Any other name is "": only the agent, at dial
// time, knows what it resolves to.
func Host(host string) string {
	h := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(host)), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return Loopback
	}
	a, err := netip.ParseAddr(h)
	if err != nil {
		return ""
	}
	return Addr(a)
}
