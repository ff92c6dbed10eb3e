package netstack

import "golang.org/x/sys/unix"

// NewStack runs a Stack on the TUN descriptor fd, which must come from a
// TUN device made with IFF_TUN|IFF_NO_PI|IFF_VNET_HDR and TUN_F_CSUM
// offload (as Exec and ServeTUN make it; see tunLink for why). The Stack
// owns fd from now on, even on error.
func NewStack(fd int, dial Dialer, plan Planner, opt Options) (*Stack, error) {
	mtu := opt.MTU
	if mtu == 0 {
		mtu = MTU
	}
	l, err := newTunLink(fd, mtu)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	release := func() error {
		unix.Close(l.stop.EFD)
		return unix.Close(fd)
	}
	st, err := newStack(l, release, dial, plan, opt)
	if err != nil {
		release()
		return nil, err
	}
	return st, nil
}
