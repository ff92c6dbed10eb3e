// Package relaydial connects to a relay that may answer at several
// addresses: several relays listed by the operator, or one name that
// resolves to several A and AAAA records. It races them as RFC 8305
// (Happy Eyeballs v2) describes: every name resolved to all its
// addresses, the families interleaved, an attempt started every 250 ms
// (at once when the one before fails), and the first connection whose
// TLS handshake completes wins. A relay that accepts TCP but never
// answers the handshake therefore costs 250 ms, not the whole handshake
// bound, and a dead relay in a list costs nothing at all.
package relaydial

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"
)

// Stagger is the delay between two attempts (RFC 8305 §5 recommends
// 250 ms): long enough that a healthy first address wins without a
// second handshake, short enough that a silent one is passed quickly.
const Stagger = 250 * time.Millisecond

// Resolver looks up a host's addresses; *net.Resolver is one. Tests give
// a name several loopback addresses with their own.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Handshake turns a freshly connected TCP conn to target (the host:port
// as given) into the caller's connection, typically by completing a TLS
// handshake whose certificate check (pin, CA) decides whether this relay
// is trusted. It must return when ctx ends; the dialer also closes raw
// then. A nil Handshake keeps the TCP connection as it is.
type Handshake func(ctx context.Context, raw net.Conn, target string) (net.Conn, error)

// Dialer races a relay's addresses. The zero value is ready to use.
type Dialer struct {
	Resolver  Resolver      // default net.DefaultResolver
	Stagger   time.Duration // default Stagger
	KeepAlive time.Duration // TCP keep-alive, default 30 s
}

// Conn is the winner of a race.
type Conn struct {
	net.Conn
	Target string         // the target it was reached through, as given
	Addr   netip.AddrPort // the address that answered
}

// candidate is one address to try, with the target it came from.
type candidate struct {
	target string
	addr   netip.AddrPort
}

// attempt is the outcome of one candidate.
type attempt struct {
	c    candidate
	conn net.Conn
	err  error
}

// Dial connects to the first of targets (host:port each) to complete a
// handshake. See DialAvoid.
func (d *Dialer) Dial(ctx context.Context, targets []string, hs Handshake) (*Conn, error) {
	return d.DialAvoid(ctx, targets, netip.AddrPort{}, hs)
}

// DialAvoid is Dial with avoid tried last: a relay that asked its agents
// to move is given the others' chance first, and is still reached when it
// is the only one left. The losers of the race are closed before it
// returns. The error, when every address failed, is one sentence naming
// each address and why.
func (d *Dialer) DialAvoid(ctx context.Context, targets []string, avoid netip.AddrPort, hs Handshake) (*Conn, error) {
	if len(targets) == 0 {
		return nil, errors.New("no relay address to dial")
	}
	cands, failures := d.resolve(ctx, targets)
	cands = order(cands, avoid)
	if len(cands) == 0 {
		return nil, joinFailures(failures)
	}
	stagger := d.Stagger
	if stagger <= 0 {
		stagger = Stagger
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan attempt, len(cands))
	var wg sync.WaitGroup
	start := func(c candidate) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := d.try(rctx, c, hs)
			results <- attempt{c, conn, err}
		}()
	}
	next, running := 0, 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	var won *Conn
race:
	for won == nil && (next < len(cands) || running > 0) {
		var fire <-chan time.Time
		if next < len(cands) {
			fire = timer.C
		}
		select {
		case <-fire:
			start(cands[next])
			next++
			running++
			timer.Reset(stagger)
		case r := <-results:
			running--
			if r.err != nil {
				failures = append(failures, fmt.Sprintf("%s (%v)", describe(r.c), r.err))
				if next < len(cands) {
					// A failed attempt starts the next one at once.
					timer.Stop()
					timer.Reset(0)
				}
				continue
			}
			won = &Conn{Conn: r.conn, Target: r.c.target, Addr: r.c.addr}
		case <-ctx.Done():
			break race
		}
	}
	// The losers: cancelled, and closed if they completed meanwhile.
	cancel()
	wg.Wait()
	close(results)
	for r := range results {
		if r.conn != nil {
			r.conn.Close()
		}
	}
	if won != nil {
		return won, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", joinFailures(failures), err)
	}
	return nil, joinFailures(failures)
}

// try connects to one candidate and runs the handshake, closing the TCP
// connection if ctx ends first (a handshake that ignores ctx still
// returns then).
func (d *Dialer) try(ctx context.Context, c candidate, hs Handshake) (net.Conn, error) {
	ka := d.KeepAlive
	if ka == 0 {
		ka = 30 * time.Second
	}
	nd := net.Dialer{KeepAlive: ka}
	raw, err := nd.DialContext(ctx, "tcp", c.addr.String())
	if err != nil {
		return nil, trimOp(err)
	}
	if hs == nil {
		return raw, nil
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	conn, err := hs(ctx, raw, c.target)
	if !stop() {
		// ctx ended during the handshake: raw is closed, and a
		// connection that completed anyway is a loser.
		if err == nil {
			conn.Close()
		}
		return nil, fmt.Errorf("handshake: %w", ctx.Err())
	}
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	return conn, nil
}

// resolve turns targets into candidates, resolving names concurrently.
// Failures (a bad target, a name with no address) are kept for the
// error sentence; the others are still tried.
func (d *Dialer) resolve(ctx context.Context, targets []string) ([]candidate, []string) {
	res := d.Resolver
	if res == nil {
		res = net.DefaultResolver
	}
	per := make([][]candidate, len(targets))
	fails := make([]string, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		host, portStr, err := net.SplitHostPort(t)
		if err != nil {
			fails[i] = fmt.Sprintf("%q (not host:port)", t)
			continue
		}
		port, err := net.LookupPort("tcp", portStr)
		if err != nil {
			fails[i] = fmt.Sprintf("%s (bad port)", t)
			continue
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			per[i] = []candidate{{t, netip.AddrPortFrom(ip.Unmap(), uint16(port))}}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ips, err := res.LookupNetIP(ctx, "ip", host)
			if err == nil && len(ips) == 0 {
				err = errors.New("no address")
			}
			if err != nil {
				fails[i] = fmt.Sprintf("%s (%v)", t, trimOp(err))
				return
			}
			for _, ip := range ips {
				per[i] = append(per[i], candidate{t, netip.AddrPortFrom(ip.Unmap(), uint16(port))})
			}
		}()
	}
	wg.Wait()
	var cands []candidate
	for _, p := range per {
		cands = append(cands, p...)
	}
	var failures []string
	for _, f := range fails {
		if f != "" {
			failures = append(failures, f)
		}
	}
	return cands, failures
}

// order drops duplicate addresses, interleaves the families (RFC 8305
// §4: IPv6 first, then one of each in turn, each family in the order
// given) and moves avoid to the end.
func order(cands []candidate, avoid netip.AddrPort) []candidate {
	seen := map[netip.AddrPort]bool{}
	var v6, v4, last []candidate
	for _, c := range cands {
		if seen[c.addr] {
			continue
		}
		seen[c.addr] = true
		switch {
		case avoid.IsValid() && c.addr == avoid:
			last = append(last, c)
		case c.addr.Addr().Is6():
			v6 = append(v6, c)
		default:
			v4 = append(v4, c)
		}
	}
	out := make([]candidate, 0, len(cands))
	for i := 0; i < len(v6) || i < len(v4); i++ {
		if i < len(v6) {
			out = append(out, v6[i])
		}
		if i < len(v4) {
			out = append(out, v4[i])
		}
	}
	return append(out, last...)
}

// describe names a candidate: its address, and the name it came from
// when that was not the address itself.
func describe(c candidate) string {
	if c.addr.String() == c.target {
		return c.target
	}
	return fmt.Sprintf("%s via %s", c.addr, c.target)
}

// joinFailures makes the one sentence of a failed race.
func joinFailures(failures []string) error {
	if len(failures) == 0 {
		return errors.New("no relay address answered")
	}
	return fmt.Errorf("no relay address answered; tried %s", strings.Join(failures, ", "))
}

// trimOp drops the "dial tcp …:" prefix of a net.OpError: the sentence
// names the address already.
func trimOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		err = op.Err
		var sys *os.SyscallError
		if errors.As(err, &sys) {
			return sys.Err
		}
		return err
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return errors.New(dns.Err)
	}
	return err
}
