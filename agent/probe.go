package agent

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nanodems/connector/internal/iprange"
	"github.com/nanodems/connector/mux"
)

// A probe finds which addresses of a range answer on which ports, for
// bulk add. Probing is not tunnelling: each probe connects and closes at
// once, sends no byte, and reaches only the private and link-local IPv4
// networks of the agent's own interfaces. A range with any address
// outside them is refused whole, before anything is sent. The allowlist
// still governs every tunnel.

const (
	probeTimeout    = time.Second
	probeTimeoutMax = 5 * time.Second
	probeTimeoutMin = 50 * time.Millisecond
	// probeWorkers bounds the connects in flight: a /22 × 3 ports at 64
	// at once and 1 s each is under a minute even if nothing answers.
	probeWorkers = 64
	// maxProbePorts bounds the ports of one probe: the defaults and a
	// few of the operator's.
	maxProbePorts = 16
)

// DefaultProbePorts are probed when a request names none: HTTP, HTTPS,
// RTSP.
var DefaultProbePorts = []int{80, 443, 554}

func (a *Agent) probe(ctx context.Context, req mux.ProbeRequest, rep *reporter) error {
	r, err := iprange.Parse(req.Range)
	if err != nil {
		return err
	}
	ports, err := probePorts(req.Ports)
	if err != nil {
		return err
	}
	timeout := probeTimeout
	if req.TimeoutMillis > 0 {
		timeout = min(max(time.Duration(req.TimeoutMillis)*time.Millisecond, probeTimeoutMin), probeTimeoutMax)
	}
	ifs, err := a.lanInterfaces()
	if err != nil {
		return err
	}
	own := map[netip.Addr]bool{}
	var nets []netip.Prefix
	for _, li := range ifs {
		nets = append(nets, li.nets...)
		for _, ad := range li.addrs {
			own[ad] = true
		}
	}
	addrs := r.Addrs()
	for _, ad := range addrs {
		if !slices.ContainsFunc(nets, func(p netip.Prefix) bool { return p.Contains(ad) }) {
			return fmt.Errorf("%s is outside the private and link-local networks of this agent's interfaces (%s): a probe stays on the agent's own LAN", ad, lanNets(ifs))
		}
	}
	// The agent's own addresses are no cameras, and a tunnel to them is
	// refused (target.go): they are skipped.
	if !a.cfg.AllowLoopback {
		addrs = slices.DeleteFunc(addrs, func(ad netip.Addr) bool { return own[ad] })
	}

	total := len(addrs)
	rep.progress(0, total)
	type job struct {
		i    int
		port int
	}
	jobs := make(chan job)
	var (
		mu        sync.Mutex
		open      = make([][]int, total)
		remaining = make([]int, total)
		done      int
	)
	for i := range remaining {
		remaining[i] = len(ports)
	}
	var wg sync.WaitGroup
	for range min(probeWorkers, total*len(ports)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := &net.Dialer{Timeout: timeout}
			for j := range jobs {
				ok := a.probeOne(ctx, d, addrs[j.i], j.port)
				mu.Lock()
				if ok {
					open[j.i] = append(open[j.i], j.port)
				}
				remaining[j.i]--
				if remaining[j.i] == 0 {
					done++
					if len(open[j.i]) > 0 {
						slices.Sort(open[j.i])
						rep.add(mux.Found{Host: addrs[j.i].String(), Ports: open[j.i]})
					}
					rep.progress(done, total)
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for i := range addrs {
		for _, p := range ports {
			select {
			case jobs <- job{i, p}:
			case <-ctx.Done():
				break feed
			}
		}
	}
	close(jobs)
	wg.Wait()
	return ctx.Err()
}

// probeOne reports whether addr:port accepts a TCP connection; the
// connection is closed at once.
func (a *Agent) probeOne(ctx context.Context, d *net.Dialer, addr netip.Addr, port int) bool {
	if ctx.Err() != nil {
		return false
	}
	c, err := a.lanDial(ctx, d, net.JoinHostPort(addr.String(), strconv.Itoa(port)))
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// probePorts checks the ports of a probe request: 1 to maxProbePorts
// distinct ports in 1..65535, DefaultProbePorts when none.
func probePorts(ps []int) ([]int, error) {
	if len(ps) == 0 {
		return DefaultProbePorts, nil
	}
	if len(ps) > maxProbePorts {
		return nil, fmt.Errorf("%d ports: a probe takes at most %d", len(ps), maxProbePorts)
	}
	var out []int
	for _, p := range ps {
		if p < 1 || p > 65535 {
			return nil, fmt.Errorf("port %d is out of range", p)
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}
