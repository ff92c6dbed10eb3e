package agent

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/xtaci/smux"

	"github.com/nanodems/connector/agent/bpfcount"
	"github.com/nanodems/connector/agent/stats"
	"github.com/nanodems/connector/internal/pipe"
	"github.com/nanodems/connector/mux"
)

// serveTunnel answers one stream the relay opened on session l: read the
// header, check the allowlist, dial, answer with a status, then join the
// stream and the target's connection (pipe.JoinAsync) and return; done
// is called when the tunnel has ended. While it is open a tunnel holds
// one goroutine, waiting on the target's socket with a small stack, and
// one more only while bytes come from the relay; this one, whose stack
// the dial and the status grew, ends here.
func (a *Agent) serveTunnel(st *smux.Stream, l *link, done func()) {
	pipe.ReserveStack()
	o, ok := a.openTunnel(st)
	if !ok {
		st.Close()
		done()
		return
	}
	a.tunnels.Add(1)
	a.active.Add(1)
	o.port.Open(stats.Opened)
	portDone := o.port.Begin()
	conn, key := o.conn, o.key
	t := &liveTunnel{target: mux.Target{Host: o.h.Host, Port: o.h.Port}, conn: conn, stream: mux.NewStream(st), link: l, key: key, lastAt: time.Now(), port: o.port}
	a.live.Store(t, struct{}{})
	end := func(error) {
		a.endTunnel(t)
		portDone()
		a.active.Add(-1)
		st.Close()
		done()
	}
	if o.h.Flags&mux.FlagDedicated != 0 {
		go a.moveToDedicated(t)
	}
	if key != 0 || a.cfg.Counting == CountingOff {
		// the kernel counts, or nobody
		pipe.JoinAsync(t.stream, conn, nil, nil, end)
	} else {
		pipe.JoinAsync(t.stream, conn, &t.out, &t.in, end)
	}
}

// opened is a tunnel whose target answered: its header, its device
// port's counters, the target's connection, and the kernel's counting
// key (0: counted by the copy loop or not at all), which endTunnel
// releases.
type opened struct {
	h    mux.Header
	port *stats.Port
	conn net.Conn
	key  bpfcount.Key
}

// openTunnel reads a tunnel's header, checks the allowlist and dials the
// target. It answers the relay's stream either way; ok is false when the
// tunnel is over (refused, failed, or a UDP relay served to its end).
func (a *Agent) openTunnel(st *smux.Stream) (o opened, ok bool) {
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	h, err := mux.ReadHeader(st)
	if err != nil {
		a.answer(st, mux.BadRequest, err.Error())
		return o, false
	}
	st.SetReadDeadline(time.Time{})
	port := a.stats.Port(h.Host, h.Port)
	if !a.allow.Allows(h.Host, h.Port) {
		port.Open(stats.NotAllowed)
		a.log.Warn("refusing target not in allowlist", "target", net.JoinHostPort(h.Host, strconv.Itoa(int(h.Port))), "allowlist_version", a.allow.Version())
		a.answer(st, mux.NotAllowed, fmt.Sprintf("%s not in allowlist v%d", net.JoinHostPort(h.Host, strconv.Itoa(int(h.Port))), a.allow.Version()))
		return o, false
	}
	if h.Flags&mux.FlagUDP != 0 {
		a.serveUDP(st, h, port) // agent/udp.go: a UDP relay to the host, no TCP dial
		return o, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.DialTimeout)
	dc := lanDialCount{count: a.count.Load(), log: a.log}
	d := net.Dialer{Control: func(network, address string, rc syscall.RawConn) error {
		if err := a.dialControl(network, address, rc); err != nil {
			return err
		}
		dc.track(rc)
		return nil
	}}
	conn, err := a.lanDial(ctx, &d, net.JoinHostPort(h.Host, strconv.Itoa(int(h.Port))))
	cancel()
	key := dc.settle(conn)
	forget := func() {
		if key != 0 {
			dc.count.Forget(key)
		}
	}
	if err != nil {
		forget()
		reason := err.Error()
		if lt := (*localTargetError)(nil); errors.As(err, &lt) {
			reason = lt.reason(h.Host)
			a.log.Warn("refusing local target", "target", net.JoinHostPort(h.Host, strconv.Itoa(int(h.Port))), "reason", reason)
		}
		code := classify(err)
		port.Open(result(code))
		a.answer(st, code, reason)
		return o, false
	}
	if err := a.answer(st, mux.OK, ""); err != nil {
		forget()
		conn.Close()
		return o, false
	}
	return opened{h: h, port: port, conn: conn, key: key}, true
}

// liveTunnel is an open tunnel, kept so an allowlist change can end the
// tunnels to targets it removes, and so a heavy one can move to its own
// connection.
type liveTunnel struct {
	target mux.Target
	conn   net.Conn
	stream *mux.Stream
	// in (target → relay) and out (relay → target) are counted by the
	// copy loop when key is 0; otherwise the kernel counts the LAN
	// socket's bytes under key.
	in     atomic.Uint64
	out    atomic.Uint64
	key    bpfcount.Key
	moving atomic.Bool
	link   *link       // the session it came on
	port   *stats.Port // its device port's counters

	// rate watch state, owned by watchRates
	lastBytes uint64
	lastAt    time.Time
}

// rateTick is how often the agent looks at its tunnels' byte rates: one
// sweep over all live tunnels, not a timer per tunnel, because a site may
// hold thousands of idle camera streams.
const rateTick = 250 * time.Millisecond

// watchRates moves the tunnels of sess whose rate passes
// Config.DedicatedRate, until sess ends.
func (a *Agent) watchRates(sess *smux.Session) {
	if a.cfg.DedicatedRate < 0 {
		return
	}
	done := sess.CloseChan()
	count := a.count.Load()
	tick := time.NewTicker(rateTick)
	defer tick.Stop()
	snap := map[bpfcount.Key]bpfcount.Counts{}
	for {
		select {
		case <-done:
			return
		case now := <-tick.C:
			// One read of the kernel's counters for the whole sweep; a
			// tunnel it misses (or all, if it fails) is read alone.
			clear(snap)
			count.ReadAll(snap)
			a.live.Range(func(k, _ any) bool {
				t := k.(*liveTunnel)
				if t.link == nil || t.link.sess != sess {
					return true // another session's, watched by its own
				}
				in, out := t.bytesFrom(snap, count)
				rate, ok := t.rate(in+out, now)
				if ok && rate > float64(a.cfg.DedicatedRate) && !t.moving.Load() {
					a.log.Info("moving heavy tunnel to a dedicated connection", "target", net.JoinHostPort(t.target.Host, strconv.Itoa(int(t.target.Port))), "rate_mib_s", int(rate/(1<<20)))
					go a.moveToDedicated(t)
				}
				return true
			})
		}
	}
}

// rate returns t's bytes per second since the last sweep that judged it,
// given its byte total now, and starts the next interval; ok is false,
// and nothing changes, when that interval is under half a tick: a tunnel
// opened just before a sweep would read a few bytes over a moment as a
// heavy rate (a 10 kB round trip was moved that way, and the move outlived
// the tunnel). The next sweep judges it over at least half a tick.
func (t *liveTunnel) rate(total uint64, now time.Time) (rate float64, ok bool) {
	dt := now.Sub(t.lastAt)
	if dt < rateTick/2 {
		return 0, false
	}
	rate = float64(total-t.lastBytes) / dt.Seconds()
	t.lastBytes, t.lastAt = total, now
	return rate, true
}

// moveToDedicated dials a connection of its own for tunnel t and, once
// the relay has accepted it, moves the tunnel onto it (mux.Stream.Attach);
// the relay attaches its end before it answers. Bytes in flight on the
// shared stream are delivered first, in order. Any failure before the
// acceptance leaves the tunnel on the shared session.
func (a *Agent) moveToDedicated(t *liveTunnel) {
	if !t.moving.CompareAndSwap(false, true) {
		return
	}
	var pre [5]byte
	pre[0] = mux.PreambleDedicatedAcked
	binary.BigEndian.PutUint32(pre[1:], t.stream.ID())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var conn net.Conn
	var err error
	if t.link != nil {
		conn, err = a.dialAt(ctx, t.link.at, pre[:])
	} else {
		conn, _, err = a.dialRelay(ctx, netip.AddrPort{}, pre[:])
	}
	if err != nil {
		a.log.Warn("dedicated connection failed; tunnel stays on the shared session", "err", err)
		return
	}
	deadline, _ := ctx.Deadline()
	if err := mux.AwaitAccepted(conn, deadline); err != nil {
		conn.Close()
		a.log.Warn("dedicated connection refused; tunnel stays on the shared session", "target", net.JoinHostPort(t.target.Host, strconv.Itoa(int(t.target.Port))), "err", err)
		return
	}
	if err := t.stream.Attach(conn); err != nil {
		conn.Close()
		a.log.Warn("attaching dedicated connection", "err", err)
		return
	}
	if t.port != nil {
		t.port.Moved()
	}
}

// endTunnel counts an ended tunnel's bytes: off the live list first, then
// into its port's Counter, so a snapshot in between reads the bytes once
// or not at all, never twice (the relay takes a dip for no new bytes).
// The kernel's entry for its socket goes with that last read.
func (a *Agent) endTunnel(t *liveTunnel) {
	a.live.Delete(t)
	in, out := t.finalBytes(a.count.Load())
	a.bytesIn.Add(in)
	a.bytesOut.Add(out)
	if t.port != nil {
		t.port.Add(in, out)
	}
}

// result is the stats.Result of a tunnel status.
func result(c mux.Code) stats.Result {
	switch c {
	case mux.OK:
		return stats.Opened
	case mux.Refused:
		return stats.Refused
	case mux.NotAllowed:
		return stats.NotAllowed
	}
	return stats.Unreachable
}

// cutDisallowed ends the open tunnels whose target the allowlist no longer
// holds: taking a camera off the list takes it off now, not at the next
// connection.
func (a *Agent) cutDisallowed() {
	a.live.Range(func(k, _ any) bool {
		t := k.(*liveTunnel)
		if !a.allow.Allows(t.target.Host, t.target.Port) {
			a.log.Info("closing tunnel to a target no longer in the allowlist", "target", net.JoinHostPort(t.target.Host, strconv.Itoa(int(t.target.Port))))
			t.conn.Close()
		}
		return true
	})
}

// cutTunnels ends the open tunnels of sess, when it has ended. Those of
// another session stay: while the agent moves between relays, the old
// session and the new one are both up.
func (a *Agent) cutTunnels(sess *smux.Session) {
	a.live.Range(func(k, _ any) bool {
		t := k.(*liveTunnel)
		if t.link != nil && t.link.sess != sess {
			return true
		}
		t.stream.Close()
		t.conn.Close()
		return true
	})
}

// classify maps a dial error to the status the operator needs to see.
func classify(err error) mux.Code {
	var dnsErr *net.DNSError
	switch {
	case isLocalTarget(err):
		return mux.NotAllowed
	case errors.Is(err, syscall.ECONNREFUSED):
		return mux.Refused
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT):
		return mux.TimedOut
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH), errors.As(err, &dnsErr):
		return mux.Unreachable
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return mux.TimedOut
	}
	return mux.Unreachable
}
