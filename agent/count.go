package agent

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"syscall"

	"github.com/nanodems/connector/agent/bpfcount"
)

// openCounter opens where the agent counts its tunnels' bytes for one
// Run: in the kernel when Config.Counting allows it and the agent may,
// else in userspace. bpfcount logs which, once.
func (a *Agent) openCounter() *bpfcount.Counter {
	switch a.cfg.Counting {
	case CountingUserspace:
		return bpfcount.Userspace(a.log, "--counting=userspace")
	case CountingOff:
		a.log.Info("not counting tunnel bytes", "counting", CountingOff)
		return nil
	}
	return bpfcount.Open(a.log)
}

// Bytes returns tunnel t's bytes so far: in, from its device toward the
// relay, and out, from the relay to its device. They are the kernel's
// count of its LAN socket when count tracks it, else the copy loop's;
// both are TCP payload bytes. Per-port sums add these up.
func (t *liveTunnel) Bytes(count *bpfcount.Counter) (in, out uint64) {
	if t.key != 0 {
		if in, out, err := count.Read(t.key); err == nil {
			return in, out
		}
	}
	return t.in.Load(), t.out.Load()
}

// finalBytes is Bytes for the last time: the kernel's count of t's
// socket is taken and its entry dropped in one call (Counter.Take).
func (t *liveTunnel) finalBytes(count *bpfcount.Counter) (in, out uint64) {
	if t.key != 0 {
		if in, out, err := count.Take(t.key); err == nil {
			return in, out
		}
	}
	return t.in.Load(), t.out.Load()
}

// bytesFrom is Bytes, with the kernel's counts taken from snap (a
// Counter.ReadAll) when it holds t's socket.
func (t *liveTunnel) bytesFrom(snap map[bpfcount.Key]bpfcount.Counts, count *bpfcount.Counter) (in, out uint64) {
	if c, ok := snap[t.key]; ok && t.key != 0 {
		return c.In, c.Out
	}
	return t.Bytes(count)
}

// lanDialCount tracks the sockets of one LAN dial in the kernel, from
// the dialer's Control hook so that a device's first bytes are counted.
// A dial may try several addresses, one socket each; settle keeps the
// one that connected.
type lanDialCount struct {
	count *bpfcount.Counter
	log   *slog.Logger

	mu       sync.Mutex // Control runs on the dialer's goroutines
	keys     []bpfcount.Key
	attempts int
}

func (d *lanDialCount) track(rc syscall.RawConn) {
	d.mu.Lock()
	d.attempts++
	d.mu.Unlock()
	k, err := d.count.Track(rc)
	if err != nil {
		if !errors.Is(err, bpfcount.ErrUserspace) {
			d.log.Warn("counting this tunnel's bytes in userspace", "err", err)
		}
		return
	}
	d.mu.Lock()
	d.keys = append(d.keys, k)
	d.mu.Unlock()
}

// settle forgets the sockets of attempts that did not connect and
// returns the key of conn's, or 0 when the copy loop must count conn
// (not tracked, or the dial failed). A dial of one attempt that
// connected and was tracked needs no look at conn's cookie: its one key
// is conn's (most dials; one system call fewer per tunnel).
func (d *lanDialCount) settle(conn net.Conn) bpfcount.Key {
	d.mu.Lock()
	defer d.mu.Unlock()
	if conn != nil && d.attempts == 1 && len(d.keys) == 1 {
		return d.keys[0]
	}
	var won bpfcount.Key
	if sc, ok := conn.(syscall.Conn); ok {
		won, _ = bpfcount.Cookie(sc)
	}
	var kept bpfcount.Key
	for _, k := range d.keys {
		if k == won {
			kept = k
			continue
		}
		d.count.Forget(k)
	}
	return kept
}
