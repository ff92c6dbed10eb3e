package agent

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/nanodems/connector/internal/localaddr"
)

// What the agent will dial. The allowlist says which (host, port) pairs a
// site's devices name, but any tenant member can name a device: without
// this check, a device at 127.0.0.1 or 169.254.169.254 reaches the
// agent's own host (on a host shared with the relay, the relay's
// loopback-only services) or the cloud's instance credentials. So unless
// Config.AllowLoopback is set, the agent refuses loopback, link-local,
// cloud metadata, unspecified, multicast and broadcast addresses and the
// addresses of its own interfaces. The check runs on the address actually
// dialled (net.Dialer.Control), after name resolution, so a name that
// resolves, or is rebound, to such an address is refused as well.

// localTargetError is a dial the agent refused for its address. It is
// answered as mux.NotAllowed.
type localTargetError struct {
	addr netip.Addr
	kind string // a localaddr kind, or ownAddress
}

const ownAddress = "own"

func (e *localTargetError) Error() string {
	if e.kind == ownAddress {
		return fmt.Sprintf("%s: the agent host's own addresses are refused by this agent (--allow-loopback)", e.addr)
	}
	return fmt.Sprintf("%s: %s targets are refused by this agent (--allow-loopback)", e.addr, e.kind)
}

// reason is the refusal as the operator reads it, for a dial to host.
func (e *localTargetError) reason(host string) string {
	if host == e.addr.String() {
		return e.Error()
	}
	return host + " resolves to " + e.Error()
}

// checkAddr returns a *localTargetError if the agent must not reach ip.
func (a *Agent) checkAddr(ip netip.Addr) error {
	if a.cfg.AllowLoopback {
		return nil
	}
	ip = ip.Unmap().WithZone("")
	if kind := localaddr.Addr(ip); kind != "" {
		return &localTargetError{addr: ip, kind: kind}
	}
	if a.own.has(ip) {
		return &localTargetError{addr: ip, kind: ownAddress}
	}
	return nil
}

// dialControl is the net.Dialer.Control of LAN dials: it sees each
// address the dialer tries, resolved, before the socket connects.
func (a *Agent) dialControl(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, err)
	}
	return a.checkAddr(ap.Addr())
}

// isLocalTarget reports whether err is a refusal by checkAddr.
func isLocalTarget(err error) bool {
	var lt *localTargetError
	return errors.As(err, &lt)
}

// ownAddrTTL bounds how stale the agent's view of its own addresses may
// be. Reading them is a netlink dump per call; a few seconds of cache
// keeps that off the tunnel-open path (thousands of opens a second in
// perf/) and still follows a DHCP renewal within the TTL.
const ownAddrTTL = 5 * time.Second

// ownAddrs caches the addresses of the agent host's interfaces.
type ownAddrs struct {
	mu    sync.Mutex
	at    time.Time
	addrs map[netip.Addr]bool
}

func (o *ownAddrs) has(ip netip.Addr) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.addrs == nil || time.Since(o.at) > ownAddrTTL {
		o.addrs, o.at = map[netip.Addr]bool{}, time.Now()
		ifAddrs, err := net.InterfaceAddrs()
		if err != nil {
			// Without the list the check cannot be made; the other
			// checks still hold, and the next call tries again.
			o.addrs = nil
			return false
		}
		for _, ia := range ifAddrs {
			if p, err := netip.ParsePrefix(ia.String()); err == nil {
				o.addrs[p.Addr().Unmap().WithZone("")] = true
			}
		}
	}
	return o.addrs[ip]
}
