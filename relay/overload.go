package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Why the API listener does its TLS handshakes itself: http.Server gives a
// connection 10 s (ReadHeaderTimeout) from accept to finish its handshake,
// and starts every accepted handshake at once. 2,000 tunnel opens at once
// on 2 cores shared the CPU 2,000 ways, every handshake took as long as
// all of them together, and those past 10 s were closed without a word
// (1,863 and 1,922 of 2,000 opened; in this package's test under -race,
// 1,988 with a p50 open time of 33 s). Here at most handshakeSlots run at
// once, each with the full window from when it starts; the rest wait,
// accepted, in order. A connection that waited longer than lateAfter is
// still served its handshake, but its first request is answered 503 with
// Retry-After: the relay is overloaded, and a client told so can back off,
// where one cut silently cannot tell a crash from a queue.
const (
	handshakeWindow = 10 * time.Second // as http.Server's, from the handshake's start
	lateAfter       = 5 * time.Second
	// maxPending bounds the connections accepted and waiting for a slot,
	// each a goroutine and a descriptor; beyond it they wait in the
	// kernel's accept queue.
	maxPending = 4096
)

// handshakeSlots: enough to keep the cores busy while some handshakes
// wait for their client's next flight, few enough that each finishes in
// milliseconds (a full handshake is ~1-2 ms of CPU).
func handshakeSlots() int { return max(32, 16*runtime.GOMAXPROCS(0)) }

// handshakeGate is a listener of TLS connections whose handshakes are done
// before Accept returns them.
type handshakeGate struct {
	ln    net.Listener // a tls.Listener
	log   *slog.Logger
	slots chan struct{}
	pend  chan struct{}
	ready chan net.Conn
	done  chan struct{}
	errc  chan error // the listener's final error
	once  sync.Once
	// ctx ends with the listener: handshakes under way stop with it.
	ctx    context.Context
	cancel context.CancelFunc

	late  sync.Map // remote address → lateConn
	nLate atomic.Int64
}

type lateConn struct {
	waited time.Duration
	at     time.Time
}

func newHandshakeGate(ln net.Listener, log *slog.Logger) *handshakeGate {
	g := &handshakeGate{
		ln: ln, log: log,
		slots: make(chan struct{}, handshakeSlots()),
		pend:  make(chan struct{}, maxPending),
		ready: make(chan net.Conn),
		done:  make(chan struct{}),
		errc:  make(chan error, 1),
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	go g.acceptLoop()
	return g
}

func (g *handshakeGate) acceptLoop() {
	var delay time.Duration
	for {
		select {
		case g.pend <- struct{}{}:
		case <-g.done:
			return
		}
		c, err := g.ln.Accept()
		if err != nil {
			<-g.pend
			// Anything but a closed listener passes (EMFILE, ECONNABORTED,
			// …), as in internal/acceptloop.
			if !errors.Is(err, net.ErrClosed) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				g.log.Warn("API accept failed; retrying", "err", err, "in", delay)
				select {
				case <-time.After(delay):
					continue
				case <-g.done:
					return
				}
			}
			g.errc <- err
			return
		}
		delay = 0
		go g.handshake(c.(*tls.Conn), time.Now())
	}
}

func (g *handshakeGate) handshake(c *tls.Conn, accepted time.Time) {
	defer func() { <-g.pend }()
	select {
	case g.slots <- struct{}{}:
	case <-g.done:
		c.Close()
		return
	}
	waited := time.Since(accepted)
	ctx, cancel := context.WithTimeout(g.ctx, handshakeWindow)
	err := c.HandshakeContext(ctx)
	cancel()
	<-g.slots
	if err != nil {
		g.log.Debug("API TLS handshake failed", "remote", c.RemoteAddr().String(), "waited", waited, "err", err)
		c.Close()
		return
	}
	if waited > lateAfter {
		g.markLate(c.RemoteAddr().String(), waited)
	}
	select {
	case g.ready <- c:
	case <-g.done:
		c.Close()
	}
}

// markLate remembers a connection that waited too long, until its first
// request (or a minute, for one that never sends any).
func (g *handshakeGate) markLate(addr string, waited time.Duration) {
	now := time.Now()
	if g.nLate.Add(1) > 1024 {
		g.late.Range(func(k, v any) bool {
			if now.Sub(v.(lateConn).at) > time.Minute {
				g.late.Delete(k)
				g.nLate.Add(-1)
			}
			return true
		})
	}
	g.late.Store(addr, lateConn{waited: waited, at: now})
}

// takeLate reports whether the connection from addr waited too long for
// its handshake, and forgets it: only its first request is refused.
func (g *handshakeGate) takeLate(addr string) (time.Duration, bool) {
	if g == nil || g.nLate.Load() <= 0 {
		return 0, false
	}
	v, ok := g.late.LoadAndDelete(addr)
	if !ok {
		return 0, false
	}
	g.nLate.Add(-1)
	lc := v.(lateConn)
	return lc.waited, time.Since(lc.at) < time.Minute
}

func (g *handshakeGate) Accept() (net.Conn, error) {
	select {
	case c := <-g.ready:
		return c, nil
	case err := <-g.errc:
		g.errc <- err
		return nil, err
	case <-g.done:
		return nil, net.ErrClosed
	}
}

func (g *handshakeGate) Close() error {
	err := net.ErrClosed
	g.once.Do(func() {
		close(g.done)
		g.cancel()
		err = g.ln.Close()
	})
	return err
}

func (g *handshakeGate) Addr() net.Addr { return g.ln.Addr() }

// overloaded answers the first request of a connection that waited past
// lateAfter for its handshake: 503, and a Retry-After of about the wait,
// which is how long the queue ahead of it took to clear.
func (s *Server) overloaded(w http.ResponseWriter, r *http.Request) bool {
	secs, reason, late := s.lateRefusal(r.RemoteAddr)
	if !late {
		return false
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": reason})
	return true
}

// lateRefusal says whether the connection from addr is to be refused as
// overloaded has it, with the Retry-After seconds and the reason.
func (s *Server) lateRefusal(addr string) (secs int, reason string, late bool) {
	waited, ok := s.gate.takeLate(addr)
	if !ok {
		return 0, "", false
	}
	secs = min(max(int(waited.Round(time.Second)/time.Second), 1), 30)
	s.log.Info("relay overloaded: request refused", "remote", addr, "handshake_wait", waited.Round(time.Millisecond), "retry_after", secs)
	return secs, "relay overloaded: this connection waited " + waited.Round(time.Second).String() + " for its TLS handshake; retry after " + strconv.Itoa(secs) + " s", true
}
