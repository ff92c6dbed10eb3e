package netstack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// DefaultTunDevice is the clone device every TUN interface is made from.
const DefaultTunDevice = "/dev/net/tun"

// tunName is the interface name inside the tool's namespace; the namespace
// holds nothing else, so the name never clashes.
const tunName = "nanodems0"

// openTun creates the TUN interface name from the clone device dev and
// returns its descriptor (close-on-exec) and the name the kernel gave it.
// IFF_NO_PI: bare IPv4 packets, no 4-byte packet-info prefix.
// IFF_VNET_HDR with TUN_F_CSUM: a virtio header on every packet, through
// which the kernel and the stack skip TCP checksums (see tunLink).
func openTun(dev, name string) (int, string, error) {
	fd, err := unix.Open(dev, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, "", tunOpenError(dev, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return -1, "", fmt.Errorf("TUN interface name %q: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		switch {
		case errors.Is(err, unix.EPERM):
			return -1, "", fmt.Errorf("creating TUN interface %s: %w (needs CAP_NET_ADMIN: run as admin, or in a user namespace that allows it; on Ubuntu, sysctl kernel.apparmor_restrict_unprivileged_userns=1 withholds it)", name, err)
		case errors.Is(err, unix.EBUSY):
			return -1, "", fmt.Errorf("creating TUN interface %s: %w (another process holds an interface of that name)", name, err)
		case errors.Is(err, unix.EBADFD), errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOTTY):
			return -1, "", fmt.Errorf("creating TUN interface %s: %s is not a TUN clone device: %w", name, dev, err)
		}
		return -1, "", fmt.Errorf("creating TUN interface %s: %w", name, err)
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, unix.TUN_F_CSUM); err != nil {
		unix.Close(fd)
		return -1, "", fmt.Errorf("checksum offload on TUN interface %s: %w", name, err)
	}
	return fd, ifr.Name(), nil
}

// tunOpenError turns a failed open of the clone device into the sentence
// the operator needs: what is missing and what an admin does about it.
func tunOpenError(dev string, err error) error {
	switch {
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return fmt.Errorf("cannot open %s: permission denied: the TUN device must be usable by every user (crw-rw-rw-); an admin can run `chmod 0666 %s`, or use `nanodems-tunnel run --tun` as admin", dev, dev)
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENODEV), errors.Is(err, unix.ENXIO):
		return fmt.Errorf("cannot open %s: %v: this system has no TUN device; an admin can run `modprobe tun`", dev, err)
	}
	return fmt.Errorf("cannot open %s: %w", dev, err)
}

// ifaceCtl runs interface ioctls through a throwaway datagram socket, which
// is what SIOC*IF* requests need; the socket belongs to the caller's
// network namespace, so so does the interface.
func ifaceCtl(name string, fn func(sock int, ifr *unix.Ifreq) error) error {
	sock, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(sock)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	return fn(sock, ifr)
}

// linkUp sets IFF_UP on name and, when mtu is not zero, its MTU first.
func linkUp(name string, mtu uint32) error {
	return ifaceCtl(name, func(sock int, ifr *unix.Ifreq) error {
		if mtu != 0 {
			ifr.SetUint32(mtu)
			if err := unix.IoctlIfreq(sock, unix.SIOCSIFMTU, ifr); err != nil {
				return fmt.Errorf("setting MTU %d on %s: %w", mtu, name, err)
			}
		}
		if err := unix.IoctlIfreq(sock, unix.SIOCGIFFLAGS, ifr); err != nil {
			return fmt.Errorf("reading flags of %s: %w", name, err)
		}
		ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
		if err := unix.IoctlIfreq(sock, unix.SIOCSIFFLAGS, ifr); err != nil {
			return fmt.Errorf("bringing %s up: %w", name, err)
		}
		return nil
	})
}

// ifIndex returns the interface index of name.
func ifIndex(name string) (int, error) {
	var idx int
	err := ifaceCtl(name, func(sock int, ifr *unix.Ifreq) error {
		if err := unix.IoctlIfreq(sock, unix.SIOCGIFINDEX, ifr); err != nil {
			return fmt.Errorf("index of %s: %w", name, err)
		}
		idx = int(ifr.Uint32())
		return nil
	})
	return idx, err
}

// setRouteLocalnet lets name carry 127.0.0.0/8 traffic. Linux drops
// loopback-addressed packets on any other interface as martians, both
// ways: with the flag off, `connect(127.0.0.2)` through the TUN fails with
// EINVAL, and the stack's answers from 127.0.0.2 never arrive. The file
// belongs to the caller's network namespace, and CAP_NET_ADMIN over that
// namespace is enough to write it (net_ctl_permissions), so this works in
// the rootless namespace too.
func setRouteLocalnet(name string) error {
	p := filepath.Join("/proc/sys/net/ipv4/conf", name, "route_localnet")
	if err := os.WriteFile(p, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("enabling route_localnet on %s: %w", name, err)
	}
	return nil
}

// route is one IPv4 route for rtnetlink.
type route struct {
	table   uint8
	typ     uint8 // RTN_*
	scope   uint8 // RT_SCOPE_*
	dst     netip.Prefix
	oif     int        // 0: none
	prefSrc netip.Addr // invalid: none
}

// routeChange sends one RTM_NEWROUTE or RTM_DELROUTE and waits for the
// kernel's answer. It is the only netlink this package needs, so it is a
// few dozen lines over x/sys rather than a netlink library (DESIGN:
// a dependency earns its place).
func routeChange(msgType uint16, flags uint16, r route) error {
	sock, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	defer unix.Close(sock)
	if err := unix.Bind(sock, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink bind: %w", err)
	}
	msg := appendRouteMsg(nil, msgType, flags|unix.NLM_F_REQUEST|unix.NLM_F_ACK, 1, r)
	if err := unix.Sendto(sock, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink send: %w", err)
	}
	buf := make([]byte, 4096)
	for {
		n, _, err := unix.Recvfrom(sock, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("netlink receive: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return fmt.Errorf("netlink answer: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != 1 {
				continue
			}
			if m.Header.Type == unix.NLMSG_ERROR {
				if len(m.Data) < 4 {
					return errors.New("netlink answer: short error message")
				}
				if code := int32(binary.NativeEndian.Uint32(m.Data[:4])); code != 0 {
					return unix.Errno(-code)
				}
				return nil
			}
		}
	}
}

// appendRouteMsg lays out nlmsghdr, rtmsg and the route attributes.
func appendRouteMsg(b []byte, msgType, flags uint16, seq uint32, r route) []byte {
	start := len(b)
	b = binary.NativeEndian.AppendUint32(b, 0) // length, patched below
	b = binary.NativeEndian.AppendUint16(b, msgType)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0) // port id: the kernel's
	// struct rtmsg. A delete matches on the protocol too unless it is
	// unspecified: the kernel's own routes are RTPROT_KERNEL, ours static.
	proto := uint8(unix.RTPROT_STATIC)
	if msgType == unix.RTM_DELROUTE {
		proto = unix.RTPROT_UNSPEC
	}
	b = append(b, unix.AF_INET, byte(r.dst.Bits()), 0, 0, r.table, proto, r.scope, r.typ)
	b = binary.NativeEndian.AppendUint32(b, 0) // rtm_flags
	dst := r.dst.Addr().As4()
	b = appendAttr(b, unix.RTA_DST, dst[:])
	if r.oif != 0 {
		b = appendAttr(b, unix.RTA_OIF, binary.NativeEndian.AppendUint32(nil, uint32(r.oif)))
	}
	if r.prefSrc.IsValid() {
		src := r.prefSrc.As4()
		b = appendAttr(b, unix.RTA_PREFSRC, src[:])
	}
	binary.NativeEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

func appendAttr(b []byte, typ uint16, data []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(unix.SizeofRtAttr+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// divertLoopback makes every 127.0.0.0/8 address except 127.0.0.1 leave
// through the TUN interface (index oif) in the caller's network namespace.
// It is meant for the tool's private namespace, where nothing else uses
// loopback: the kernel's `local 127.0.0.0/8 dev lo` route in the local
// table (consulted before main) would deliver 127.0.0.2 to lo, so it goes,
// leaving `local 127.0.0.1`, and `127.0.0.0/8 dev nanodems0 src 127.0.0.1`
// takes its place. The source stays 127.0.0.1, so the tool sees an
// ordinary loopback connection (route_localnet must be set first, or the
// kernel refuses the loopback source with EINVAL).
func divertLoopback(oif int) error {
	err := routeChange(unix.RTM_DELROUTE, 0, route{
		table: unix.RT_TABLE_LOCAL, typ: unix.RTN_LOCAL, scope: unix.RT_SCOPE_NOWHERE,
		dst: loopbackNet,
	})
	if err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("removing the local route 127.0.0.0/8: %w", err)
	}
	err = routeChange(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_REPLACE, route{
		table: unix.RT_TABLE_MAIN, typ: unix.RTN_UNICAST, scope: unix.RT_SCOPE_LINK,
		dst: loopbackNet, oif: oif, prefSrc: loopbackOne,
	})
	if err != nil {
		return fmt.Errorf("routing 127.0.0.0/8 into the TUN interface: %w", err)
	}
	return nil
}

// hostRoute adds (add=true) or removes the route that sends one plan
// address ip to the TUN interface oif in the host namespace. It goes in
// the local table, where the more specific /32 beats the kernel's
// `local 127.0.0.0/8`, so only plan addresses move and every other
// loopback service of the machine (127.0.0.53 and so on) stays as it was.
func hostRoute(add bool, ip netip.Addr, oif int) error {
	r := route{
		table: unix.RT_TABLE_LOCAL, typ: unix.RTN_UNICAST, scope: unix.RT_SCOPE_LINK,
		dst: netip.PrefixFrom(ip, 32), oif: oif, prefSrc: loopbackOne,
	}
	if add {
		return routeChange(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_REPLACE, r)
	}
	return routeChange(unix.RTM_DELROUTE, 0, r)
}
