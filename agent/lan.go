package agent

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// The agent's view of its LAN, for discovery and probing: the interfaces
// it may look on and the sockets it opens there. Every socket is made
// through onLAN, so a test can put the LAN in a network namespace
// (Config.OnLAN) while the agent's session to the relay stays outside.

// onLAN runs fn where the agent's LAN is.
func (a *Agent) onLAN(fn func() error) error {
	if a.cfg.OnLAN == nil {
		return fn()
	}
	return a.cfg.OnLAN(fn)
}

// lanIface is an up interface and its private or link-local IPv4
// networks.
type lanIface struct {
	iface     net.Interface
	multicast bool
	nets      []netip.Prefix // masked
	addrs     []netip.Addr   // the interface's own addresses in nets
}

// lanInterfaces lists the interfaces a probe or a discovery may use: up,
// not loopback, with at least one private (RFC 1918) or link-local IPv4
// address. A public address never makes its network probeable.
func (a *Agent) lanInterfaces() ([]lanIface, error) {
	var out []lanIface
	err := a.onLAN(func() error {
		ifs, err := net.Interfaces()
		if err != nil {
			return err
		}
		for _, ifi := range ifs {
			if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagLoopback != 0 {
				continue
			}
			addrs, err := ifi.Addrs()
			if err != nil {
				continue
			}
			li := lanIface{iface: ifi, multicast: ifi.Flags&net.FlagMulticast != 0}
			for _, ad := range addrs {
				ipn, ok := ad.(*net.IPNet)
				if !ok {
					continue
				}
				ip, ok := netip.AddrFromSlice(ipn.IP)
				if !ok {
					continue
				}
				ip = ip.Unmap()
				ones, _ := ipn.Mask.Size()
				if !ip.Is4() || !(ip.IsPrivate() || ip.IsLinkLocalUnicast()) {
					continue
				}
				li.nets = append(li.nets, netip.PrefixFrom(ip, ones).Masked())
				li.addrs = append(li.addrs, ip)
			}
			if len(li.nets) > 0 {
				out = append(out, li)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	return out, nil
}

// lanNets is every network of ifs, for messages.
func lanNets(ifs []lanIface) string {
	var s []string
	for _, li := range ifs {
		for _, n := range li.nets {
			s = append(s, n.String())
		}
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// lanDial connects to addr (host:port) where the LAN is, with the local
// target check of tunnels when check is set.
func (a *Agent) lanDial(ctx context.Context, d *net.Dialer, addr string) (net.Conn, error) {
	var conn net.Conn
	err := a.onLAN(func() error {
		var err error
		conn, err = d.DialContext(ctx, "tcp", addr)
		return err
	})
	return conn, err
}
