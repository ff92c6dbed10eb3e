package netstack

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// PlanPoll is how often ServeTUN compares the plan with its routes. The
// CLI refreshes the plan every 60 s; a 2 s poll makes a new camera
// reachable within 2 s of the refresh for one map walk per poll.
const PlanPoll = 2 * time.Second

// planPollForTest is PlanPoll, shortened by the tests.
var planPollForTest = PlanPoll

// DefaultTunName is the host interface of --tun.
const DefaultTunName = "nanodems0"

// ServeTUN is the admin way (--tun): it serves the plan to the whole
// machine until ctx ends. It makes the TUN interface name in the host
// namespace (CAP_NET_ADMIN needed), runs a Stack on it, and keeps one /32
// route per plan address in the local routing table pointing into it, so
// every program on the machine reaches 127.0.0.X:port through the stack
// while other loopback addresses keep working as before. Closing the
// interface on return removes it and its routes.
func ServeTUN(ctx context.Context, name string, dial Dialer, plan Planner) error {
	return serveTUN(ctx, name, dial, plan, Options{}, DefaultTunDevice, nil)
}

func serveTUN(ctx context.Context, name string, dial Dialer, plan Planner, opt Options, dev string, ready func(*Stack)) error {
	if plan == nil {
		return errors.New("--tun: a Planner is needed to know which addresses to route")
	}
	if name == "" {
		name = DefaultTunName
	}
	fd, ifname, err := openTun(dev, name)
	if err != nil {
		return fmt.Errorf("--tun: %w", err)
	}
	if err := linkUp(ifname, MTU); err != nil {
		unix.Close(fd)
		return fmt.Errorf("--tun: %w", err)
	}
	if err := setRouteLocalnet(ifname); err != nil {
		unix.Close(fd)
		return fmt.Errorf("--tun: %w", err)
	}
	idx, err := ifIndex(ifname)
	if err != nil {
		unix.Close(fd)
		return fmt.Errorf("--tun: %w", err)
	}
	st, err := NewStack(fd, dial, plan, opt)
	if err != nil {
		return fmt.Errorf("--tun: %w", err)
	}
	defer st.Close()

	routed := make(map[netip.Addr]bool)
	defer func() {
		for ip := range routed {
			hostRoute(false, ip, idx)
		}
	}()
	sync := func() error {
		want := make(map[netip.Addr]bool)
		for ap := range plan() {
			if ip := ap.Addr().Unmap(); ip.Is4() && loopbackNet.Contains(ip) && ip != loopbackOne {
				want[ip] = true
			}
		}
		var errs error
		for ip := range want {
			if !routed[ip] {
				if err := hostRoute(true, ip, idx); err != nil {
					errs = errors.Join(errs, fmt.Errorf("--tun: routing %s into %s: %w", ip, ifname, err))
					continue
				}
				routed[ip] = true
			}
		}
		for ip := range routed {
			if !want[ip] {
				hostRoute(false, ip, idx)
				delete(routed, ip)
			}
		}
		return errs
	}
	if err := sync(); err != nil {
		return err
	}
	st.log.Info("serving the plan through " + ifname)
	if ready != nil {
		ready(st)
	}
	tick := time.NewTicker(planPollForTest)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if err := sync(); err != nil {
				st.log.Warn(err.Error())
			}
		}
	}
}
