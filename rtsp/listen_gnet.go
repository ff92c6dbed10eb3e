package rtsp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strconv"

	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/pool/goroutine"
)

// The event-loop listener. gnet (v2) runs a few event loops (one per
// core) that read and write every client socket; no goroutine waits on an
// idle or playing viewer. Three properties of gnet shape this file:
//
//   - gnet has no TLS. RTSPS (rtsps://, RFC 7826 §19) is therefore not
//     served on this listener; an installation that needs it terminates
//     TLS in front of the gateway or runs the goroutine listener behind
//     crypto/tls. The tunnel from relay to camera is TLS either way.
//   - gnet closes a connection as soon as the peer half-closes it (read
//     returns 0). RTSP has no half-close semantics (RFC 2326 §10: either
//     side may close the connection at any time), so the gateway treats a
//     FIN as the client leaving: items already read are still handled in
//     order (a TEARDOWN sent just before the FIN still reaches the
//     camera), then the camera session ends. Answers written after the
//     FIN are lost, which is what a half-closing RTSP client gets
//     anyway from cameras.
//   - gnet reads whatever arrives into an inbound buffer that grows
//     without bound if the handler leaves bytes in it. OnTraffic therefore
//     always consumes everything it can parse: complete items are copied
//     out and queued, and what is left is at most one incomplete item,
//     bounded by Limits (header size, body size, 64 KiB frames) or the
//     connection is refused. The queue to the connection's worker is
//     bounded too (maxQueued); a client that overruns it (media sent
//     faster than the camera takes it) is closed rather than buffered.
//
// The same holds outbound: gnet's Write buffers without bound when the
// socket is full. gnetOutput samples the outbound buffer after each flush
// and refuses (fan-out) or holds back (pass-through) writes while it is
// over the connection's limit.
type gnetListener struct {
	gnet.BuiltinEventEngine
	g       *Gateway
	eng     gnet.Engine
	address string
	booted  chan struct{}
	stopped chan struct{}
	runErr  error
	ready   chan struct{} // closed once address and rebind are known
	rebind  string        // the address a restarted engine binds

	// emu guards the engine across restarts (run) and close.
	emu      sync.Mutex
	eng2     gnet.Engine // the running engine; eng is the first one's
	running  bool        // eng2 has booted and not yet stopped
	closing  bool
	bootOnce sync.Once
	restarts atomic.Int64

	fmu      sync.Mutex
	flushers map[gnet.EventLoop]*loopFlusher
}

// loopFlusher batches the flushes of one event loop's connections into
// one task: a camera read fans out to hundreds of viewers per loop, and a
// task per viewer (gnet's Wake) costs an allocation and an eventfd write
// each. Connections queue themselves; the first one schedules the task.
type loopFlusher struct {
	el        gnet.EventLoop
	mu        sync.Mutex
	pending   []*gnetOutput
	scheduled bool
	task      gnet.RunnableFunc
}

func (l *gnetListener) flusher(el gnet.EventLoop) *loopFlusher {
	l.fmu.Lock()
	defer l.fmu.Unlock()
	f := l.flushers[el]
	if f == nil {
		f = &loopFlusher{el: el}
		f.task = f.run
		if l.flushers == nil {
			l.flushers = map[gnet.EventLoop]*loopFlusher{}
		}
		l.flushers[el] = f
	}
	return f
}

func (f *loopFlusher) add(o *gnetOutput) {
	f.mu.Lock()
	f.pending = append(f.pending, o)
	if f.scheduled {
		f.mu.Unlock()
		return
	}
	f.scheduled = true
	f.mu.Unlock()
	if f.el.Execute(context.Background(), f.task) != nil {
		// The engine is stopping and closes every connection.
		f.mu.Lock()
		f.pending, f.scheduled = nil, false
		f.mu.Unlock()
	}
}

// run flushes every queued connection; it runs on the event loop.
func (f *loopFlusher) run(context.Context) error {
	f.mu.Lock()
	list := f.pending
	f.pending, f.scheduled = nil, false
	f.mu.Unlock()
	for _, o := range list {
		o.flushOnLoop()
	}
	return nil
}

// gnet's package-level goroutine pool (pkg/pool/goroutine, two ants
// goroutines from package init on) serves only gnet's client side and its
// Windows build; on Linux a server never submits to it. The gateway keeps
// it released while no gnet listener runs, so a process that imports the
// package carries no idle goroutines of it (goleak checks every test
// binary), and restores it for the life of a listener, as gnet expects.
var gnetPool struct {
	sync.Mutex
	users int
}

func init() { goroutine.DefaultWorkerPool.Release() }

func gnetPoolAcquire() {
	gnetPool.Lock()
	defer gnetPool.Unlock()
	if gnetPool.users == 0 {
		goroutine.DefaultWorkerPool.Reboot()
	}
	gnetPool.users++
}

func gnetPoolRelease() {
	gnetPool.Lock()
	defer gnetPool.Unlock()
	gnetPool.users--
	if gnetPool.users == 0 {
		goroutine.DefaultWorkerPool.ReleaseTimeout(time.Second)
	}
}

func listenGnet(g *Gateway) (listener, error) {
	l := &gnetListener{g: g, booted: make(chan struct{}), stopped: make(chan struct{}), ready: make(chan struct{})}
	loops := g.cfg.Loops
	if loops <= 0 {
		loops = runtime.NumCPU()
	}
	opts := []gnet.Option{
		gnet.WithMulticore(true),
		gnet.WithNumEventLoop(loops),
		gnet.WithTCPKeepAlive(15 * time.Second), // dead peers without a FIN
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithLogger(gnetLogger{g.log}),
	}
	if g.cfg.SendBuffer > 0 {
		opts = append(opts, gnet.WithSocketSendBuffer(g.cfg.SendBuffer))
	}
	// A restarted engine binds the port its first one had (cfg.Addr may
	// say port 0); the address reuse lets it bind while the connections
	// the last one closed are in TIME_WAIT, as net.Listen does.
	opts = append(opts, gnet.WithReuseAddr(true))
	gnetPoolAcquire()
	g.goFn(func() {
		defer close(l.stopped)
		defer gnetPoolRelease()
		l.run(opts)
	})
	select {
	case <-l.booted:
	case <-l.stopped:
		return nil, bindError(g.cfg.Addr, l.runErr)
	}
	err := l.lookAddr()
	close(l.ready) // run may restart the engine from here on
	if err != nil {
		l.close()
		return nil, err
	}
	return l, nil
}

// bindError says why the first engine did not start. gnet (v2.10.0)
// loses the reason when the bind fails: it reports the error of a
// setsockopt on the socket its failed bind already closed
// ("setsockopt: bad file descriptor"). Binding the address as net.Listen
// does (the same SO_REUSEADDR) gives the real one, "listen tcp
// 127.0.0.1:9554: bind: address already in use", as the goroutine
// listener says it; if that bind works (the port was freed meanwhile),
// gnet's error stands.
func bindError(addr string, gnetErr error) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	ln.Close()
	return gnetErr
}

// lookAddr reads the address the first engine bound: the one to dial,
// and the one to bind again on a restart (cfg.Addr may say port 0).
func (l *gnetListener) lookAddr() error {
	fd, err := l.eng.Dup()
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return err
	}
	var bound *net.TCPAddr
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		bound = &net.TCPAddr{IP: a.Addr[:], Port: a.Port}
	case *syscall.SockaddrInet6:
		bound = &net.TCPAddr{IP: a.Addr[:], Port: a.Port}
	default:
		l.address, l.rebind = l.g.cfg.Addr, l.g.cfg.Addr
		return nil
	}
	l.address = dialable(bound)
	host, _, _ := net.SplitHostPort(l.g.cfg.Addr)
	l.rebind = net.JoinHostPort(host, strconv.Itoa(bound.Port))
	return nil
}

func (l *gnetListener) addr() string { return l.address }

// run runs the engine until close, starting it again when it stops on
// its own. gnet ends its engine on a failed accept other than EAGAIN,
// EINTR, ECONNRESET and ECONNABORTED: out of file descriptors (EMFILE),
// the gateway would stop listening for good. A stop that close did not
// ask for is such a failure (Run returns nil either way). The restart
// waits as internal/acceptloop does, 5 ms doubling to 1 s, while the
// listener cannot be bound again (socket(2) fails with EMFILE too). What
// gnet does not let the gateway keep: the stopped engine closed every
// connection it served, so viewers reconnect (RTSP players do).
func (l *gnetListener) run(opts []gnet.Option) {
	addr := l.g.cfg.Addr
	var delay time.Duration
	for {
		err := gnet.Run(l, "tcp://"+addr, opts...)
		l.emu.Lock()
		l.running = false
		closing := l.closing
		l.emu.Unlock()
		if closing {
			return
		}
		select {
		case <-l.booted:
		default: // the first start failed: listenGnet reports it
			l.runErr = err
			return
		}
		<-l.ready
		addr = l.rebind
		if err != nil {
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
		} else {
			delay = 0 // it ran: restart at once
		}
		if l.restarts.Add(1) == 1 || err == nil {
			l.g.log.Warn("rtsp: the gnet engine stopped (a failed accept, most likely out of file descriptors); restarting it", "addr", addr, "err", err)
		}
		time.Sleep(delay)
	}
}

// close stops the engine, which closes every connection (each then ends
// through OnClose), and waits for it.
func (l *gnetListener) close() error {
	l.emu.Lock()
	l.closing = true
	eng, running := l.eng2, l.running
	l.emu.Unlock()
	if running {
		// Engine.Stop polls for the end every 500 ms; start the shutdown
		// and wait on Run's return instead.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		eng.Stop(ctx)
	}
	<-l.stopped
	return nil
}

func (l *gnetListener) OnBoot(eng gnet.Engine) gnet.Action {
	l.emu.Lock()
	defer l.emu.Unlock()
	if l.closing {
		return gnet.Shutdown // closed while restarting
	}
	l.eng2, l.running = eng, true
	l.bootOnce.Do(func() {
		l.eng = eng
		close(l.booted)
	})
	return gnet.None
}

// OnShutdown runs before the engine closes its listener: listenGnet may
// still be reading the listener (lookAddr) when an engine stops on its
// own right after its start.
func (l *gnetListener) OnShutdown(gnet.Engine) { <-l.ready }

// gconn is the event loop's state of one socket.
type gconn struct {
	l     *gnetListener
	kind  atomic.Int32 // one of the gk constants
	cc    *clientConn  // the RTSP connection, or the tunnel's (GET half owns it)
	out   *gnetOutput  // this socket's output (RTSP, GET half)
	timer *time.Timer

	// POST half
	cookie string
	dec    Base64Stream
	plain  []byte
	feed   itemFeeder
}

const (
	gkNew int32 = iota
	gkRTSP
	gkGet
	gkPost
	gkDone // refused; bytes are ignored until the close
)

func (l *gnetListener) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	gc := &gconn{l: l}
	c.SetContext(gc)
	gc.timer = time.AfterFunc(l.g.cfg.IdleTimeout, func() {
		if gc.kind.Load() == gkNew {
			c.Close()
		}
	})
	return nil, gnet.None
}

func (l *gnetListener) OnTraffic(c gnet.Conn) gnet.Action {
	gc, _ := c.Context().(*gconn)
	if gc == nil {
		return gnet.Close
	}
	if gc.out != nil {
		gc.out.flush(c)
	}
	if c.InboundBuffered() == 0 {
		return gnet.None
	}
	buf, _ := c.Peek(-1)
	n, act := gc.feedBytes(c, buf)
	if n > 0 {
		c.Discard(n)
	}
	return act
}

func (l *gnetListener) OnClose(c gnet.Conn, _ error) gnet.Action {
	gc, _ := c.Context().(*gconn)
	if gc == nil {
		return gnet.None
	}
	gc.timer.Stop()
	if gc.out != nil {
		gc.out.closed()
	}
	if gc.cc != nil { // an RTSP connection, or a tunnel's GET half
		l.g.unregisterTunnel(gc.cookie, gc.cc)
		gc.cc.end()
	}
	return gnet.None
}

// feedBytes handles what arrived; it returns how much it consumed.
func (gc *gconn) feedBytes(c gnet.Conn, buf []byte) (int, gnet.Action) {
	g := gc.l.g
	off := 0
	switch gc.kind.Load() {
	case gkNew:
		switch sniffHTTP(buf) {
		case needMore:
			return 0, gnet.None
		case httpTunnel:
			return gc.tunnelHalf(c, buf)
		}
		gc.out = newGnetOutput(c, g.cfg.Backlog, gc.l.flusher(c.EventLoop()))
		gc.cc = newClientConn(g, gc.out, c.RemoteAddr(), c.LocalAddr(), gc.out.close)
		gc.kind.Store(gkRTSP)
		fallthrough
	case gkRTSP:
		for off < len(buf) {
			it, n, err := ParseItem(buf[off:], g.cfg.Limits)
			if errors.Is(err, ErrIncomplete) {
				off += n
				break
			}
			if err != nil {
				var pe *ParseError
				status := 400
				if errors.As(err, &pe) {
					status = pe.Status
				}
				// On the loop: write directly, then close (gnet sends
				// its buffer first).
				c.Write((&Response{StatusCode: status}).AppendTo(nil))
				gc.kind.Store(gkDone)
				gc.cc.cancel()
				return len(buf), gnet.Close
			}
			off += n
			if it.Kind == KindFrame {
				it.Frame = append([]byte(nil), it.Frame...)
			}
			if !gc.cc.submit(it) {
				return len(buf), gnet.None
			}
		}
		return off, gnet.None
	case gkPost:
		var err error
		if gc.plain, err = gc.dec.Decode(gc.plain[:0], buf); err == nil {
			cc := g.lookupTunnel(gc.cookie)
			if cc == nil {
				return len(buf), gnet.Close
			}
			err = gc.feed.feed(gc.plain, cc.submit)
		}
		if err != nil {
			return len(buf), gnet.Close
		}
		return len(buf), gnet.None
	default: // a GET half sends nothing more; refused sockets are closing
		return len(buf), gnet.None
	}
}

// tunnelHalf reads the HTTP header of a tunnel half.
func (gc *gconn) tunnelHalf(c gnet.Conn, buf []byte) (int, gnet.Action) {
	g := gc.l.g
	hh, n, err := ParseTunnelHalf(buf)
	if errors.Is(err, ErrIncomplete) {
		return 0, gnet.None
	}
	if err != nil {
		var pe *ParseError
		status := 400
		if errors.As(err, &pe) {
			status = pe.Status
		}
		c.Write(httpError(status))
		gc.kind.Store(gkDone)
		c.CloseWithCallback(nil)
		return len(buf), gnet.None
	}
	gc.cookie = hh.Cookie
	if !hh.Post {
		gc.out = newGnetOutput(c, g.cfg.Backlog, gc.l.flusher(c.EventLoop()))
		posts := &postHalves{}
		out := gc.out
		cc := newClientConn(g, gc.out, c.RemoteAddr(), c.LocalAddr(), func() {
			out.close()
			posts.close()
		})
		cc.attachPost = posts.attach
		if !g.registerTunnel(hh.Cookie, cc) {
			c.Write(httpError(400))
			gc.kind.Store(gkDone)
			cc.closeTransport()
			cc.end()
			return len(buf), gnet.None
		}
		gc.cc = cc
		gc.kind.Store(gkGet)
		c.Write(tunnelAnswer(hh.Minor))
		return len(buf), gnet.None
	}
	cc := g.lookupTunnel(hh.Cookie)
	if cc == nil {
		c.Write(httpError(404))
		gc.kind.Store(gkDone)
		c.CloseWithCallback(nil)
		return len(buf), gnet.None
	}
	cc.attachPost(c)
	gc.feed.lim = g.cfg.Limits
	gc.kind.Store(gkPost)
	m, act := gc.feedBytes(c, buf[n:])
	return n + m, act
}

// postHalves holds the POST half of a tunnel, to close it with the GET.
type postHalves struct {
	mu sync.Mutex
	c  io.Closer
}

func (p *postHalves) attach(c io.Closer) {
	p.mu.Lock()
	old := p.c
	p.c = c
	p.mu.Unlock()
	if old != nil && old != c {
		old.Close() // one POST at a time: the newer wins
	}
}

func (p *postHalves) close() {
	p.mu.Lock()
	c := p.c
	p.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// gnetOutput queues writes for one gnet connection and writes them from
// the event loop: a queue plus a Wake, so a burst of packets for a viewer
// becomes one writev on its loop.
type gnetOutput struct {
	c     gnet.Conn
	limit int
	lf    *loopFlusher

	mu        sync.Mutex
	q         []outItem
	qBytes    int
	outbound  int // gnet's outbound buffer after the last flush
	scheduled bool
	closing   bool // close after the next flush
	isClosed  bool

	// event-loop scratch
	batch []outItem
	bufs  [][]byte
	hdr   []byte
}

func newGnetOutput(c gnet.Conn, limit int, lf *loopFlusher) *gnetOutput {
	return &gnetOutput{c: c, limit: limit, lf: lf}
}

// scheduleLocked asks the event loop to flush, once per round.
func (o *gnetOutput) scheduleLocked() {
	if !o.scheduled && !o.isClosed {
		o.scheduled = true
		o.lf.add(o)
	}
}

// flushOnLoop is the loop flusher's call. OnClose runs on the same loop
// and marks the output closed before gnet closes the descriptor, so a
// closed output is never written: its number may already be another
// connection's.
func (o *gnetOutput) flushOnLoop() {
	o.mu.Lock()
	if o.isClosed {
		o.scheduled = false
		o.mu.Unlock()
		return
	}
	o.mu.Unlock()
	o.flush(o.c)
}

func (o *gnetOutput) write(b []byte) error { return o.writeItem(ownCopy(b)) }

func (o *gnetOutput) writeOwned(b []byte) error { return o.writeItem(outItem{b: b, pooled: true}) }

func (o *gnetOutput) writeItem(it outItem) error {
	o.mu.Lock()
	for !o.isClosed && !o.closing && o.qBytes+o.outbound > o.limit {
		// Backpressure: the camera reader waits here, so the tunnel's
		// flow control holds the camera. The outbound sample only
		// refreshes on a flush, so ask for one and look again shortly.
		o.scheduleLocked()
		o.mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		o.mu.Lock()
	}
	if o.isClosed || o.closing {
		o.mu.Unlock()
		releaseItems([]outItem{it})
		return net.ErrClosed
	}
	o.q = append(o.q, it)
	o.qBytes += len(it.b)
	o.scheduleLocked()
	o.mu.Unlock()
	return nil
}

func (o *gnetOutput) enqueue(p *packet, ch byte, limit int) enqueueResult {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.isClosed || o.closing {
		return gone
	}
	if o.qBytes+o.outbound > limit {
		o.scheduleLocked() // refresh the sample: the socket may have drained
		return full
	}
	p.ref()
	o.q = append(o.q, outItem{p: p, ch: ch})
	o.qBytes += len(p.buf)
	return queued
}

func (o *gnetOutput) kick() {
	o.mu.Lock()
	if len(o.q) > 0 {
		o.scheduleLocked()
	}
	o.mu.Unlock()
}

// flushHold: while gnet still holds more than this for a connection
// (its socket was full), flush hands it nothing more. gnet would copy it
// into an outbound buffer of its own, per connection; kept in the queue
// it stays a reference to a packet shared with every other viewer. With
// 3,200 viewers on a loaded box, handing gnet up to 64 KiB more took the
// gateway to 545 MiB (docs/perf-rtsp.md); holding back at any leftover
// bounds gnet's copy to one partial batch per slow connection.
const flushHold = 0

// flush writes the queue; it runs on the event loop.
func (o *gnetOutput) flush(c gnet.Conn) {
	out := c.OutboundBuffered()
	o.mu.Lock()
	o.scheduled = false
	o.outbound = out
	if out > flushHold && !o.closing {
		// Tried again at the next kick or write; the backlog counts both.
		o.mu.Unlock()
		return
	}
	o.batch, o.q = o.q, o.batch[:0]
	o.mu.Unlock()
	n := 0
	if len(o.batch) > 0 {
		for _, it := range o.batch {
			n += it.size()
		}
		o.bufs, o.hdr = appendItems(o.bufs[:0], o.hdr[:0], o.batch)
		// writev takes at most IOV_MAX (1024) buffers; gnet passes them
		// straight to the system.
		for bufs := o.bufs; len(bufs) > 0; {
			k := min(len(bufs), 1000)
			if _, err := c.Writev(bufs[:k]); err != nil {
				break
			}
			bufs = bufs[k:]
		}
		releaseItems(o.batch)
		clear(o.bufs)
	}
	out = c.OutboundBuffered()
	o.mu.Lock()
	o.qBytes -= n
	o.outbound = out
	closing := o.closing
	o.mu.Unlock()
	if closing {
		c.Close() // gnet sends what it still buffers, as far as the socket takes it
	}
}

// close closes the connection after what is queued (an answer written
// just before, as after three refused grants) has gone to gnet.
func (o *gnetOutput) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.isClosed || o.closing {
		return
	}
	o.closing = true
	o.scheduleLocked() // the flush closes
}

// closed drops what is queued; OnClose calls it.
func (o *gnetOutput) closed() {
	o.mu.Lock()
	o.isClosed = true
	q := o.q
	o.q = nil
	o.mu.Unlock()
	releaseItems(q)
}

// gnetLogger sends gnet's own log lines to the gateway's logger.
type gnetLogger struct{ l *slog.Logger }

func (g gnetLogger) Debugf(f string, a ...any) { g.l.Debug("gnet: " + fmt.Sprintf(f, a...)) }
func (g gnetLogger) Infof(f string, a ...any)  { g.l.Debug("gnet: " + fmt.Sprintf(f, a...)) }
func (g gnetLogger) Warnf(f string, a ...any)  { g.l.Warn("gnet: " + fmt.Sprintf(f, a...)) }
func (g gnetLogger) Errorf(f string, a ...any) { g.l.Error("gnet: " + fmt.Sprintf(f, a...)) }
func (g gnetLogger) Fatalf(f string, a ...any) { g.l.Error("gnet: " + fmt.Sprintf(f, a...)) }
