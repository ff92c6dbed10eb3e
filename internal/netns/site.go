//go:build linux

package netns

import (
	"strconv"
	"testing"
)

// Site is a camera site in namespaces: Agent, where the agent looks at its
// LAN, has lan0 (10.98.0.1/24) to Cams (cam0, holding 10.98.0.2 through
// 10.98.0.<1+cams>) and exit0 (192.0.2.1/24, a public network, the
// default route) to Net, the "internet": a packet that leaves the LAN
// has a way out, and is counted on exit0.
type Site struct {
	Agent, Cams, Net *NS
}

// NewSite builds a Site with cams camera addresses.
func NewSite(t testing.TB, cams int) *Site {
	t.Helper()
	s := &Site{Agent: New(t), Cams: New(t), Net: New(t)}
	var addrs []string
	for i := 2; i < 2+cams; i++ {
		addrs = append(addrs, "10.98.0."+strconv.Itoa(i)+"/24")
	}
	Link(t, s.Agent, "lan0", []string{"10.98.0.1/24"}, s.Cams, "cam0", addrs)
	Link(t, s.Agent, "exit0", []string{"192.0.2.1/24"}, s.Net, "wan0", []string{"192.0.2.2/24"})
	s.Agent.IP(t, "route", "add", "default", "via", "192.0.2.2")
	return s
}

// CamIP is the address of camera i (0-based): 10.98.0.<2+i>.
func CamIP(i int) string { return "10.98.0." + strconv.Itoa(2+i) }
