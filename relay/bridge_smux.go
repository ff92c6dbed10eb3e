package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xtaci/smux"

	"github.com/nanodems/connector/internal/coalesce"
	"github.com/nanodems/connector/internal/pipe"
	"github.com/nanodems/connector/mux"
	"github.com/nanodems/connector/relay/bridgewire"
	"github.com/nanodems/connector/relay/store"
)

// The bridge's transport: one smux session per peer endpoint over one
// mTLS connection (ALPN bridgewire.Protocol), a stream per tunnel that
// opens with a bridgewire.Open in the SYN's write and is answered with a
// bridgewire status, then carries the tunnel as a mux.Stream, as between
// a relay and its agent. It replaced a gRPC stream per tunnel on a pooled
// HTTP/2 connection: measured side by side in one run, gRPC's transport
// cost the two relays more CPU per byte than the tunnel's own TLS leg
// (docs/perf-ha.md, docs/ha.md).

// linkConn is the TLS connection under a peer link's session. It records
// that the socket failed before smux tells the streams, so that a stream
// ending without EOF can be told apart: the far relay cut the tunnel (its
// FIN) or the link between the relays was lost.
type linkConn struct {
	*coalesce.Conn
	failed atomic.Bool
}

func (c *linkConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.failed.Store(true)
	}
	return n, err
}

// bridgeSmuxConfig is the peer link's smux configuration: the agent
// session's (mux.Config), whose keepalive (10 s, 30 s timeout) finds a
// dead peer. A stream may have 4 MiB in flight, the window that let one
// bulk tunnel fill a LAN between relays (docs/perf-ha.md).
func bridgeSmuxConfig() *smux.Config {
	c := mux.Config()
	c.MaxStreamBuffer = 4 << 20
	return c
}

// peerLink is the pooled connection to one peer endpoint. It dials when a
// tunnel needs it and the last attempt is not too recent: after a failure
// the next dial waits peerBackoff, from 100 ms growing to 2 s, and an open
// in that time fails at once. A peer relay restarted after a minute takes
// bridged tunnels again within 2 s, and a relay that is gone costs a dial
// only when a tunnel asks for it.
type peerLink struct {
	b        *bridge
	endpoint string

	mu       sync.Mutex
	sess     *smux.Session
	conn     *linkConn
	dialing  chan struct{} // closed when the dial under way ends
	failures int           // dials failed in a row
	retryAt  time.Time     // no dial before this after a failure
	lastErr  error
	closed   bool
}

// peerBackoff is the wait after n failed dials in a row.
func peerBackoff(n int) time.Duration {
	d := float64(peerConnect.base)
	for i := 1; i < n && d < float64(peerConnect.max); i++ {
		d *= peerConnect.multiplier
	}
	d = min(d, float64(peerConnect.max))
	d *= 1 + peerConnect.jitter*(2*rand.Float64()-1)
	return time.Duration(d)
}

// peerConnect bounds a peer link's dials.
var peerConnect = struct {
	base, max          time.Duration
	multiplier, jitter float64
	timeout            time.Duration // one dial and handshake
}{100 * time.Millisecond, 2 * time.Second, 1.6, 0.2, 5 * time.Second}

// link is the pooled link to endpoint.
func (b *bridge) link(endpoint string) *peerLink {
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.links[endpoint]
	if l == nil {
		l = &peerLink{b: b, endpoint: endpoint}
		b.links[endpoint] = l
	}
	return l
}

var errBridgeClosed = errors.New("bridge closed")

// session is the link's live session, dialled if need be.
func (l *peerLink) session(ctx context.Context) (*smux.Session, *linkConn, error) {
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return nil, nil, errBridgeClosed
		}
		if l.sess != nil && !l.sess.IsClosed() && !l.conn.failed.Load() {
			s, c := l.sess, l.conn
			l.mu.Unlock()
			return s, c, nil
		}
		if l.dialing == nil {
			if wait := time.Until(l.retryAt); wait > 0 {
				err := l.lastErr
				l.mu.Unlock()
				return nil, nil, fmt.Errorf("peer link in backoff for %v more: %w", wait.Round(time.Millisecond), err)
			}
			l.dialing = make(chan struct{})
			l.b.served.Add(1)
			go l.dial()
		}
		ch := l.dialing
		l.mu.Unlock()
		select {
		case <-ch:
			l.mu.Lock()
			err := l.lastErr
			ok := l.sess != nil && !l.sess.IsClosed()
			l.mu.Unlock()
			if !ok && err != nil {
				return nil, nil, err
			}
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
}

// dial connects the link, on its own goroutine: the tunnel that asked
// for it may give up, the others waiting for the link do not.
func (l *peerLink) dial() {
	defer l.b.served.Done()
	sess, conn, err := l.connect()
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.dialing)
	l.dialing = nil
	if err == nil && l.closed {
		sess.Close()
		err = errBridgeClosed
	}
	if err != nil {
		l.failures++
		l.retryAt = time.Now().Add(peerBackoff(l.failures))
		l.lastErr = err
		return
	}
	l.failures, l.lastErr, l.retryAt = 0, nil, time.Time{}
	l.sess, l.conn = sess, conn
	l.b.served.Add(1)
	go l.watch(sess, conn)
}

func (l *peerLink) connect() (*smux.Session, *linkConn, error) {
	host, _, err := net.SplitHostPort(l.endpoint)
	if err != nil {
		return nil, nil, fmt.Errorf("peer endpoint %q: %w", l.endpoint, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), peerConnect.timeout)
	defer cancel()
	raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", l.endpoint)
	if err != nil {
		return nil, nil, err
	}
	tc := l.b.clientTLS.Clone()
	tc.ServerName = host
	tc.NextProtos = []string{bridgewire.Protocol}
	c := coalesce.Client(raw, tc)
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, nil, err
	}
	if p := c.ConnectionState().NegotiatedProtocol; p != bridgewire.Protocol {
		raw.Close()
		return nil, nil, fmt.Errorf("peer %s does not speak %s (ALPN %q)", l.endpoint, bridgewire.Protocol, p)
	}
	lc := &linkConn{Conn: c}
	sess, err := smux.Client(lc, bridgeSmuxConfig())
	if err != nil {
		raw.Close()
		return nil, nil, err
	}
	return sess, lc, nil
}

// watch ends with the link's session: the socket failed, the keepalive
// timed out, or the bridge closed. The peer opens no streams on it.
func (l *peerLink) watch(sess *smux.Session, conn *linkConn) {
	defer l.b.served.Done()
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			break
		}
		st.Close()
	}
	conn.failed.Store(true)
	sess.Close()
	conn.NetConn().Close()
	l.mu.Lock()
	if l.sess == sess {
		l.sess, l.conn = nil, nil
		if !l.closed {
			l.b.s.log.Warn("peer link lost", "endpoint", l.endpoint, "streams", sess.NumStreams())
		}
	}
	l.mu.Unlock()
}

func (l *peerLink) close() {
	l.mu.Lock()
	l.closed = true
	sess := l.sess
	l.mu.Unlock()
	if sess != nil {
		sess.Close()
	}
}

// dialSmux opens a bridged tunnel on the link to l's relay.
func (b *bridge) dialSmux(ctx context.Context, l store.Lease, r store.Route, o DialOptions) (net.Conn, error) {
	sess, lc, err := b.link(l.Endpoint).session(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, b.unreachable(l, err)
	}
	var arr [3 + 2*bridgewire.MaxField + 1]byte
	open, err := bridgewire.AppendOpen(arr[:0], bridgewire.Open{Handle: r.Handle, Agent: l.AgentID, Flags: o.Flags})
	if err != nil {
		return nil, err
	}
	st, err := sess.OpenStreamWith(open)
	if err != nil {
		return nil, b.unreachable(l, err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(openTimeout)
	}
	st.SetReadDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { st.SetReadDeadline(time.Now()) })
	code, reason, err := bridgewire.ReadStatus(st)
	stopped := stop()
	st.SetReadDeadline(time.Time{})
	if err != nil {
		st.Close()
		var ne net.Error
		switch {
		case ctx.Err() != nil || !stopped:
			return nil, context.Cause(ctx)
		case errors.As(err, &ne) && ne.Timeout():
			return nil, fmt.Errorf("%w: relay %s did not answer in time", ErrTimeout, l.RelayNode)
		}
		return nil, b.unreachable(l, err)
	}
	if reason, err = decodeStatus(append([]byte{code}, reason...)); err != nil {
		st.Close()
		return nil, err
	}
	m := b.s.metrics.path(o.Path)
	m.open.Add(1)
	c := &bridgeStream{
		Stream: mux.NewStream(st), link: lc, bytes: &b.bytes, meter: m, status: reason,
		local: bridgeAddr("bridge:" + b.s.cfg.NodeName), remote: bridgeAddr("bridge:" + l.RelayNode + "/" + l.AgentID),
	}
	c.end = func() {
		b.open.Add(-1)
		m.open.Add(-1)
	}
	return c, nil
}

// serveLinks serves the peer listener: each connection's TLS handshake,
// then by its ALPN protocol a bridge session, or gRPC's HTTP/2 server
// (the transport kept for the side-by-side measurement, bridgeTransport).
func (b *bridge) serveLink(raw net.Conn) {
	defer b.served.Done()
	raw.SetDeadline(time.Now().Add(15 * time.Second))
	tc := coalesce.Server(raw, b.serverTLS)
	if err := tc.Handshake(); err != nil {
		b.s.log.Info("peer TLS handshake failed", "remote", raw.RemoteAddr().String(), "err", err)
		raw.Close()
		return
	}
	raw.SetDeadline(time.Time{})
	switch tc.ConnectionState().NegotiatedProtocol {
	case bridgewire.Protocol:
	case "h2":
		if !b.h2.push(tc) {
			raw.Close()
		}
		return
	default:
		raw.Close()
		return
	}
	lc := &linkConn{Conn: tc}
	sess, err := smux.Server(lc, bridgeSmuxConfig())
	if err != nil {
		raw.Close()
		return
	}
	if !b.track(sess) {
		sess.Close()
		raw.Close()
		return
	}
	defer b.untrack(sess)
	defer raw.Close()
	defer sess.Close()
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			return
		}
		b.served.Add(1)
		go b.serveStream(st, lc)
	}
}

// track registers a session the peer listener serves, so that close ends
// it; false once the bridge is closed.
func (b *bridge) track(sess *smux.Session) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closing {
		return false
	}
	b.serving[sess] = struct{}{}
	return true
}

func (b *bridge) untrack(sess *smux.Session) {
	b.mu.Lock()
	delete(b.serving, sess)
	b.mu.Unlock()
}

// bridgeOpenWait bounds how long the peer listener waits for a stream's
// open; the calling relay writes it with the stream's SYN.
const bridgeOpenWait = 10 * time.Second

// serveStream is one bridged tunnel on the relay that holds the agent:
// read the open, dial through the agent session (dialBridged re-checks),
// answer the status, then join the two until both directions end.
func (b *bridge) serveStream(st *smux.Stream, lc *linkConn) {
	defer b.served.Done()
	st.SetReadDeadline(time.Now().Add(bridgeOpenWait))
	o, err := bridgewire.ReadOpen(st)
	if err != nil {
		b.s.log.Info("bridge stream without an open", "remote", st.RemoteAddr().String(), "err", err)
		st.Close()
		return
	}
	st.SetReadDeadline(time.Time{})
	conn, err := b.s.dialBridged(b.ctx, bridgeOpen(o))
	var arr [3 + bridgewire.MaxReason]byte
	if err != nil {
		b.failures.Add(1)
		body := encodeStatus("", err)
		st.Write(bridgewire.AppendStatus(arr[:0], body[0], string(body[1:])))
		st.Close()
		return
	}
	reason := ""
	if sc, ok := conn.(openStatuser); ok {
		reason = sc.openStatus()
	}
	if _, err := st.Write(bridgewire.AppendStatus(arr[:0], bridgeOK, reason)); err != nil {
		conn.Close()
		st.Close()
		return
	}
	b.opens.Add(1)
	b.open.Add(1)
	defer b.open.Add(-1)
	pc := &bridgeStream{
		Stream: mux.NewStream(st), link: lc, bytes: &b.bytes,
		local: bridgeAddr("bridge:" + b.s.cfg.NodeName), remote: bridgeAddr("bridge:peer"),
	}
	pipe.Join(conn, pc, nil, nil)
}

// bridgeStream is a bridged tunnel's stream as a net.Conn, on both
// relays: on the calling relay it is what Dial returns, so that every
// access path gets the same conn as from a local agent; on the relay
// that holds the agent it is joined to the agent's tunnel. Half-close is
// mux.Stream's EOF frame; a Close before it is a cut, which the far side
// reads as an error, not an end.
type bridgeStream struct {
	*mux.Stream
	link          *linkConn
	bytes         *atomic.Uint64 // both directions
	meter         *pathMeter     // the access path's, on the calling relay; nil on the other
	status        string         // the OK status's reason (a UDP relay's ports)
	end           func()         // once, at Close; may be nil
	local, remote net.Addr
	closed        atomic.Bool
}

func (c *bridgeStream) openStatus() string { return c.status }

func (c *bridgeStream) Read(p []byte) (int, error) {
	n, err := c.Stream.Read(p)
	c.read(n)
	return n, c.wireErr(err)
}

// WaitRead is the stream's (pipe.ReadWaiter), with its errors told as
// Read tells them.
func (c *bridgeStream) WaitRead() error { return c.wireErr(c.Stream.WaitRead()) }

// TryRead is the stream's (pipe.InlineSource), counted as Read counts.
func (c *bridgeStream) TryRead(p []byte) (int, error) {
	n, err := c.Stream.TryRead(p)
	c.read(n)
	if err == pipe.ErrWouldBlock {
		return n, err
	}
	return n, c.wireErr(err)
}

func (c *bridgeStream) Write(p []byte) (int, error) {
	n, err := c.Stream.Write(p)
	c.wrote(n)
	return n, c.wireErr(err)
}

// WriteFrame is the stream's (pipe.FrameWriter), counting the payload.
func (c *bridgeStream) WriteFrame(b []byte) error {
	err := c.Stream.WriteFrame(b)
	if err == nil {
		header, _ := c.Stream.FrameLayout()
		c.wrote(len(b) - header)
	}
	return c.wireErr(err)
}

// TryWriteFrame is the stream's (pipe.InlineFrameWriter), counted as
// WriteFrame counts.
func (c *bridgeStream) TryWriteFrame(b []byte, from pipe.InlineSource) (bool, error) {
	sent, err := c.Stream.TryWriteFrame(b, from)
	if sent && err == nil {
		header, _ := c.Stream.FrameLayout()
		c.wrote(len(b) - header)
	}
	return sent, c.wireErr(err)
}

func (c *bridgeStream) read(n int) {
	if n > 0 {
		c.bytes.Add(uint64(n))
		if c.meter != nil {
			c.meter.fromDevice.Add(uint64(n))
		}
	}
}

func (c *bridgeStream) wrote(n int) {
	if n > 0 {
		c.bytes.Add(uint64(n))
		if c.meter != nil {
			c.meter.toDevice.Add(uint64(n))
		}
	}
}

// errFarCut is a bridged tunnel that its far side ended without EOF.
var errFarCut = fmt.Errorf("bridge: tunnel cut on the far side: %w", io.ErrUnexpectedEOF)

// errLinkLost is a bridged tunnel whose link between the relays failed.
// The link's own words (the peer's address, the socket's error) go to the
// log only, as linkErr's do for gRPC.
var errLinkLost = errors.New("bridge: the link to the relay that holds the agent was lost")

// wireErr is a stream error as the tunnel's client may read it: a
// deadline is os.ErrDeadlineExceeded as on a TCP conn, a lost link and a
// far cut are told apart, in words that name no transport or address.
func (c *bridgeStream) wireErr(err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	if c.closed.Load() {
		return net.ErrClosed
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return os.ErrDeadlineExceeded
	}
	if c.link.failed.Load() {
		return errLinkLost
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errFarCut
	}
	return fmt.Errorf("bridge: %w", err)
}

func (c *bridgeStream) Close() error {
	if c.closed.CompareAndSwap(false, true) && c.end != nil {
		c.end()
	}
	return c.Stream.Close()
}

func (c *bridgeStream) LocalAddr() net.Addr  { return c.local }
func (c *bridgeStream) RemoteAddr() net.Addr { return c.remote }

// h2Listener hands the peer listener's HTTP/2 connections, TLS done, to
// gRPC's server.
type h2Listener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newH2Listener(addr net.Addr) *h2Listener {
	return &h2Listener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// push hands c to gRPC; false once the listener is closed.
func (l *h2Listener) push(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *h2Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *h2Listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *h2Listener) Addr() net.Addr { return l.addr }
