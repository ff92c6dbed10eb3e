package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nanodems/connector/internal/acceptloop"
)

// listeners are the OS listeners of the plan (way a): one per entry, on
// the entry's own loopback address. Linux answers on all of 127.0.0.0/8
// without configuration; other systems need an alias per address, and
// ports below 1024 need privileges almost everywhere. A bind that fails is
// logged once, with what to do, and tried again on every plan refresh; it
// never stops the process, and the proxy still reaches the address.
type listeners struct {
	t *Tunnel

	mu     sync.Mutex
	bound  map[netip.AddrPort]*boundListener
	failed map[netip.AddrPort]string // why the last bind failed, as logged
	closed bool
}

type boundListener struct {
	ln    net.Listener
	entry PlanEntry
}

func newListeners(t *Tunnel) *listeners {
	return &listeners{t: t, bound: map[netip.AddrPort]*boundListener{}, failed: map[netip.AddrPort]string{}}
}

// errPrivileged is a bind refused up front by Options.Privileged.
var errPrivileged = errors.New("privileged port")

// sync makes the listeners match entries: removed addresses stop
// accepting (their open connections go on), new ones and those that
// failed before are bound.
func (l *listeners) sync(entries []PlanEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	want := make(map[netip.AddrPort]PlanEntry, len(entries))
	for _, e := range entries {
		want[e.Addr()] = e
	}
	for ap, b := range l.bound {
		if _, ok := want[ap]; !ok {
			b.ln.Close()
			delete(l.bound, ap)
			l.t.log.Info("stopped listening on "+ap.String()+" (no longer in the plan)", "label", b.entry.Label)
		}
	}
	for ap := range l.failed {
		if _, ok := want[ap]; !ok {
			delete(l.failed, ap)
		}
	}
	for _, e := range entries {
		ap := e.Addr()
		if b, ok := l.bound[ap]; ok {
			b.entry = e
			continue
		}
		ln, err := l.bind(ap)
		if err != nil {
			why := bindProblem(ap, err)
			if l.failed[ap] != why {
				l.t.log.Warn("cannot bind "+ap.String()+": "+why+"; retrying on every plan refresh", "label", e.Label)
				l.failed[ap] = why
			}
			continue
		}
		if _, ok := l.failed[ap]; ok {
			delete(l.failed, ap)
			l.t.log.Info("listening on "+ap.String()+" (the earlier bind failure is gone)", "label", e.Label)
		} else {
			l.t.log.Info("listening on "+ap.String(), "label", e.Label, "device", e.DeviceID)
		}
		b := &boundListener{ln: ln, entry: e}
		l.bound[ap] = b
		l.t.wg.Add(1)
		go l.serve(b, ap)
	}
}

func (l *listeners) bind(ap netip.AddrPort) (net.Listener, error) {
	if p := l.t.o.Privileged; p != nil && p(ap.Port()) {
		return nil, errPrivileged
	}
	return localListen.Listen(context.Background(), "tcp", ap.String())
}

// localListen binds the listeners that local programs connect to. Their
// connections never leave the machine, where TCP keepalive probes find
// nothing (a local peer that dies resets or closes its connections), and
// turning them on cost four setsockopt calls of the ~20 system calls
// this process makes per connection.
var localListen = net.ListenConfig{KeepAlive: -1}

// bindProblem says in a sentence why a bind failed and what to do.
func bindProblem(ap netip.AddrPort, err error) string {
	switch {
	case errors.Is(err, errPrivileged), errors.Is(err, syscall.EACCES), errors.Is(err, os.ErrPermission):
		return fmt.Sprintf("port %d needs admin rights on this machine; use the --socks proxy instead", ap.Port())
	case errors.Is(err, syscall.EADDRINUSE):
		return "address already in use (a stale tunnel or another program holds it)"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Sprintf("this machine has no loopback address %s (macOS: sudo ifconfig lo0 alias %s up); use the --socks proxy instead", ap.Addr(), ap.Addr())
	}
	return err.Error()
}

// status is what the table shows for an entry.
func (l *listeners) status(ap netip.AddrPort) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.bound[ap]; ok {
		return "listening"
	}
	if why, ok := l.failed[ap]; ok {
		return "not bound: " + why
	}
	return ""
}

// serve accepts connections on one plan address until its listener closes.
func (l *listeners) serve(b *boundListener, ap netip.AddrPort) {
	defer l.t.wg.Done()
	acceptloop.Serve(l.t.ctx, b.ln, l.t.log.With("listener", ap.String()), func(c net.Conn) {
		l.t.serveLocal(c, func(done func()) { l.t.forward(c, ap, done) })
	})
}

// closeAll stops every listener (Close).
func (l *listeners) closeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for ap, b := range l.bound {
		b.ln.Close()
		delete(l.bound, ap)
	}
}

// serveLocal runs serve for local connection c in its own goroutine,
// tracked so that Close ends it. serve calls done once, when it is done
// with c (a joined connection's end may come on another goroutine).
func (t *Tunnel) serveLocal(c net.Conn, serve func(done func())) {
	untrack, ok := t.track(c)
	if !ok {
		c.Close()
		return
	}
	t.wg.Add(1)
	go serve(func() {
		c.Close()
		untrack()
		t.wg.Done()
	})
}

// printTable writes the plan as the operator reads it at start: label,
// local address, device, and whether the address is bound.
func (t *Tunnel) printTable(p Plan) {
	if t.o.Out == nil {
		return
	}
	tw := tabwriter.NewWriter(t.o.Out, 2, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "LABEL\tLOCAL ADDRESS\tDEVICE\tSTATUS\n")
	for _, e := range p.Entries {
		status := "via the proxy only"
		if t.lns != nil {
			status = t.lns.status(e.Addr())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", entryName(e), e.String(), e.DeviceID, status)
	}
	tw.Flush()
	if len(p.Entries) == 0 {
		fmt.Fprintln(t.o.Out, "The session's sites have no devices yet; the plan refreshes every", t.refresh)
	}
	if t.proxy != nil {
		fmt.Fprintf(t.o.Out, "SOCKS5 and HTTP CONNECT proxy on %s reaches every address above.\n", t.proxy.Addr())
	}
	fmt.Fprintf(t.o.Out, "Session %s expires %s unless used (hard cap %s).\n", p.SessionID,
		p.ExpiresAt.Local().Format(time.DateTime), p.HardCapAt.Local().Format(time.DateOnly))
}
