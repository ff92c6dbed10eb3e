package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xtaci/smux"

	"github.com/nanodems/connector/internal/backoff"
	"github.com/nanodems/connector/internal/pipe"
	"github.com/nanodems/connector/mux"
	"github.com/nanodems/connector/relay/secret"
)

// Options configure a Tunnel (nanodems-tunnel run).
type Options struct {
	// Relay is the relay and the CLI session: Token is the ops_ token.
	Relay Relay
	// Refresh is how often the plan is fetched again. Zero takes the
	// relay's refresh_seconds (60), at least 10 s.
	Refresh time.Duration
	// NoBind skips the OS listeners on 127.0.0.X:port (way a), for the
	// proxy alone, the netstack, or a Go program that only calls DialPlan.
	NoBind bool
	// Socks is the loopback address of the SOCKS5 + HTTP CONNECT proxy
	// (way b), e.g. "127.0.0.1:1080"; empty runs none.
	Socks string
	// Privileged reports that binding port needs rights this process does
	// not have. Such a bind is not tried; it is reported, and re-checked on
	// every refresh, like any failed bind. Nil leaves it to the OS (the bind
	// is tried and EACCES reported). Tests inject it: CI runs them as root.
	Privileged func(port uint16) bool
	// OnPlan, if set, is called with the entries of the first plan and of
	// every plan that differs from the one before (the netstack follows the
	// plan with it). It must not block.
	OnPlan func([]PlanEntry)
	// Logger gets a line per change; default slog.Default().
	Logger *slog.Logger
	// Out gets the table of the first plan; nil prints none.
	Out io.Writer
	// Transport is how the mux connection reaches the relay:
	// TransportAuto (the default, ""), TransportRaw or TransportWS
	// (raw.go).
	Transport string
}

// SessionRefusedError is the relay refusing the CLI session itself (401):
// revoked, expired, unknown. Nothing the CLI retries can fix it.
type SessionRefusedError struct {
	Reason string // the relay's sentence, e.g. "CLI session revoked"
}

func (e *SessionRefusedError) Error() string {
	return "the relay refused this CLI session: " + e.Reason
}

// UnknownAddrError is a connection to an address that is not in the plan.
type UnknownAddrError struct {
	Addr netip.AddrPort
}

func (e *UnknownAddrError) Error() string {
	return "rejecting unknown loopback " + e.Addr.String() + ": not in this CLI session's plan"
}

// ErrClosed is returned by DialPlan after Close.
var ErrClosed = errors.New("tunnel closed")

// Tunnel is a running CLI session: its plan, kept fresh, and one
// multiplexed connection to the relay (/api/cli/mux) that carries a stream
// per local connection, re-established with backoff when the relay goes
// away. The OS listeners and the SOCKS proxy feed it; DialPlan lets a Go
// program (or the netstack of nanodems-tunnel exec) use it directly.
type Tunnel struct {
	o       Options
	log     *slog.Logger
	client  *http.Client // plan fetches
	ws      *http.Client // the mux WebSocket (Relay.wsHTTPClient)
	refresh time.Duration

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	plan  atomic.Pointer[Plan]
	index atomic.Pointer[planIndex]
	addrs atomic.Pointer[map[netip.AddrPort]bool]

	mu      sync.Mutex
	sess    *smux.Session   // the live mux session, nil while reconnecting
	dead    <-chan struct{} // closed when sess breaks (see broken)
	changed chan struct{}   // closed and replaced whenever sess or fatal change
	fatal   error           // set once: the tunnel is over
	lastErr error           // why the last mux dial failed
	dials   int             // mux connections made

	done      chan struct{} // closed when fatal is set
	closeOnce sync.Once

	lns   *listeners
	proxy net.Listener

	cmu   sync.Mutex
	conns map[net.Conn]struct{} // local connections being served

	relayAt   atomic.Pointer[netip.AddrPort] // the address the last mux connection reached
	onWin     func(netip.AddrPort)           // sets relayAt
	fellBack  atomic.Bool                    // auto fell back to the WebSocket (logged once)
	transport atomic.Value                   // TransportRaw or TransportWS: the last mux connection's

	umu     sync.Mutex
	unknown map[netip.AddrPort]bool // unknown addresses already logged
}

// Run runs a CLI session until ctx ends (nil) or the relay refuses the
// session (a *SessionRefusedError).
func Run(ctx context.Context, o Options) error {
	t, err := Open(ctx, o)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-t.Done():
	}
	t.Close()
	if err := t.Err(); !errors.Is(err, ErrClosed) {
		return err
	}
	return nil
}

// Open fetches the plan, connects the mux, binds the plan's addresses and
// starts the proxy and the refresh. It fails if the relay cannot be
// reached or refuses the session; after that, lost connections are
// retried until Close.
func Open(ctx context.Context, o Options) (*Tunnel, error) {
	if o.Relay.URL == "" {
		return nil, errNoRelay
	}
	if _, err := o.Relay.targets(); err != nil {
		return nil, err
	}
	if !secret.HasPrefix(o.Relay.Token, secret.CLISession) {
		return nil, errors.New("the token is not a CLI session token (ops_…); mint one with POST /api/cli/sessions or the site page")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	var err error
	if o.Transport, err = ParseTransport(o.Transport); err != nil {
		return nil, err
	}
	t := &Tunnel{
		o: o, log: o.Logger, client: o.Relay.raceHTTPClient(),
		changed: make(chan struct{}), done: make(chan struct{}),
		conns: map[net.Conn]struct{}{}, unknown: map[netip.AddrPort]bool{},
	}
	t.onWin = func(a netip.AddrPort) { t.relayAt.Store(&a) }
	t.ws = o.Relay.wsHTTPClient(t.onWin)
	t.ctx, t.cancel = context.WithCancel(context.Background())
	p, err := fetchPlan(ctx, t.client, o.Relay)
	if err != nil {
		t.Close()
		return nil, sessionError(err)
	}
	t.refresh = o.Refresh
	if t.refresh <= 0 {
		t.refresh = max(time.Duration(p.RefreshSeconds)*time.Second, 10*time.Second)
		if p.RefreshSeconds == 0 {
			t.refresh = 60 * time.Second
		}
	}
	if o.Socks != "" {
		if t.proxy, err = listenProxy(o.Socks); err != nil {
			t.Close()
			return nil, err
		}
	}
	first := make(chan error, 1)
	t.wg.Add(1)
	go t.keep(first)
	select {
	case err = <-first:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		t.Close()
		return nil, err
	}
	// A relay that serves the plan but not the mux right now is retried
	// in the background; connections wait for it.
	t.setPlan(p)
	if !o.NoBind {
		t.lns = newListeners(t)
		t.lns.sync(p.Entries)
	}
	t.printTable(p)
	if t.proxy != nil {
		t.log.Info("SOCKS5 and HTTP CONNECT proxy listening", "addr", t.proxy.Addr().String(), "entries", len(p.Entries))
		t.wg.Add(1)
		go t.serveProxy(t.proxy)
	}
	if o.OnPlan != nil {
		o.OnPlan(t.Entries())
	}
	t.wg.Add(1)
	go t.refreshLoop()
	return t, nil
}

// Done is closed when the tunnel is over: Close, or a refusal (see Err).
func (t *Tunnel) Done() <-chan struct{} { return t.done }

// Err is why the tunnel is over: a *SessionRefusedError, ErrClosed after
// Close, or nil while it runs.
func (t *Tunnel) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.fatal
}

// Close stops listening, ends every connection and the mux session.
func (t *Tunnel) Close() error {
	t.closeOnce.Do(func() {
		t.fail(ErrClosed)
		t.cancel()
		if t.lns != nil {
			t.lns.closeAll()
		}
		if t.proxy != nil {
			t.proxy.Close()
		}
		t.mu.Lock()
		sess := t.sess
		t.mu.Unlock()
		if sess != nil {
			sess.Close()
		}
		t.cmu.Lock()
		for c := range t.conns {
			c.Close()
		}
		t.cmu.Unlock()
		t.wg.Wait()
		t.client.CloseIdleConnections()
		t.ws.CloseIdleConnections()
	})
	return nil
}

// Entries returns the current plan's entries (a copy).
func (t *Tunnel) Entries() []PlanEntry {
	p := t.plan.Load()
	if p == nil {
		return nil
	}
	return append([]PlanEntry(nil), p.Entries...)
}

// PlanAddrs returns the current plan's addresses as a snapshot that is
// never changed afterwards (a refresh swaps in a new map), so a caller on
// a hot path, such as the netstack's check of every SYN (its Planner), pays
// one atomic load and no copy.
func (t *Tunnel) PlanAddrs() map[netip.AddrPort]bool {
	if m := t.addrs.Load(); m != nil {
		return *m
	}
	return nil
}

// Plan returns the current plan, with its session expiry (a copy).
func (t *Tunnel) Plan() Plan {
	p := *t.plan.Load()
	p.Entries = append([]PlanEntry(nil), p.Entries...)
	return p
}

// ProxyAddr is the SOCKS5 / HTTP CONNECT proxy's address, nil without one.
func (t *Tunnel) ProxyAddr() net.Addr {
	if t.proxy == nil {
		return nil
	}
	return t.proxy.Addr()
}

// RelayAddr is the address of the relay the mux connection reached last
// (several relays are raced), invalid before the first.
func (t *Tunnel) RelayAddr() netip.AddrPort {
	if p := t.relayAt.Load(); p != nil {
		return *p
	}
	return netip.AddrPort{}
}

// Transport is the transport of the last mux connection, TransportRaw or
// TransportWS; empty before the first.
func (t *Tunnel) Transport() string {
	s, _ := t.transport.Load().(string)
	return s
}

// MuxConnections is how many mux connections the tunnel has made: one,
// plus one per reconnect.
func (t *Tunnel) MuxConnections() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dials
}

// DialPlan opens a connection to the plan address ip:port through the mux
// session, the path the OS listeners and the proxy use. An address not in
// the plan is an *UnknownAddrError (logged once); a refusal by the relay
// or the agent wraps a *mux.StatusError. The conn supports CloseWrite.
func (t *Tunnel) DialPlan(ctx context.Context, ip string, port uint16) (net.Conn, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return nil, &UnknownAddrError{Addr: netip.AddrPortFrom(netip.Addr{}, port)}
	}
	ap := netip.AddrPortFrom(a.Unmap(), port)
	if _, ok := t.lookup(ap); !ok {
		t.logUnknown(ap)
		return nil, &UnknownAddrError{Addr: ap}
	}
	st, err := t.dialStream(ctx, ap)
	if err != nil {
		return nil, err
	}
	return &planConn{Stream: st, remote: net.TCPAddrFromAddrPort(ap)}, nil
}

// planConn is a plan connection: a framed mux stream whose RemoteAddr is
// the plan address rather than the relay's.
type planConn struct {
	*mux.Stream
	remote net.Addr
}

func (c *planConn) RemoteAddr() net.Addr { return c.remote }

func (t *Tunnel) lookup(ap netip.AddrPort) (PlanEntry, bool) {
	x := t.index.Load()
	if x == nil {
		return PlanEntry{}, false
	}
	e, ok := (*x)[ap]
	return e, ok
}

// logUnknown logs a connection to an address outside the plan, once per
// address (spec 002 §10), so a tool retrying in a loop does not flood the
// log. The memory is bounded: past 4096 addresses it starts over.
func (t *Tunnel) logUnknown(ap netip.AddrPort) {
	t.umu.Lock()
	seen := t.unknown[ap]
	if !seen {
		if len(t.unknown) >= 4096 {
			clear(t.unknown)
		}
		t.unknown[ap] = true
	}
	t.umu.Unlock()
	if !seen {
		t.log.Warn("rejecting unknown loopback "+ap.String(), "hint", "the plan refreshes every "+t.refresh.String()+"; if it persists, the address is not in this session's sites")
	}
}

// dialTimeout bounds a local connection's wait for its stream: a relay
// reconnect, the agent's LAN dial (5 s) and the relay's own bound (15 s).
const dialTimeout = 20 * time.Second

// dialStream opens a stream for ap on the mux session and waits for the
// relay's status. While the relay is away it waits for the reconnect, up
// to ctx.
func (t *Tunnel) dialStream(ctx context.Context, ap netip.AddrPort) (*mux.Stream, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, dialTimeout)
		defer cancel()
	}
	for {
		st, dead, err := t.openStream(ctx, ap)
		if err != nil {
			return nil, err
		}
		deadline, _ := ctx.Deadline()
		st.SetDeadline(deadline)
		stop := context.AfterFunc(ctx, func() { st.SetDeadline(time.Now()) })
		err = mux.ReadStatus(st)
		stop()
		if err != nil {
			st.Close()
			var se *mux.StatusError
			if errors.As(err, &se) {
				return nil, fmt.Errorf("%s: %w", ap, se)
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%s: %w", ap, ctx.Err())
			}
			// Cut mid-open (the relay went away): try again on the next
			// session. The session's end shows within moments of the
			// stream's; any other failure is this stream's own.
			select {
			case <-dead:
				continue
			case <-time.After(100 * time.Millisecond):
			}
			return nil, fmt.Errorf("%s: %w", ap, err)
		}
		st.SetDeadline(time.Time{})
		return mux.NewStream(st), nil
	}
}

// openStream opens a stream for ap on the mux session, header sent,
// status not read. While the relay is away it waits for the reconnect, up
// to ctx.
func (t *Tunnel) openStream(ctx context.Context, ap netip.AddrPort) (*smux.Stream, <-chan struct{}, error) {
	for {
		sess, dead, err := t.session(ctx)
		if err != nil {
			return nil, nil, err
		}
		st, err := mux.OpenTunnel(sess, mux.Header{Host: ap.Addr().String(), Port: ap.Port()})
		if errors.Is(err, mux.ErrBadHeader) {
			return nil, nil, fmt.Errorf("%s: %w", ap, err)
		}
		if err != nil {
			// The session died under us; the keeper is reconnecting.
			t.dropSession(sess)
			continue
		}
		return st, dead, nil
	}
}

// session returns the live mux session and the channel that closes when
// it breaks, waiting for a reconnect up to ctx.
func (t *Tunnel) session(ctx context.Context) (*smux.Session, <-chan struct{}, error) {
	for {
		t.mu.Lock()
		sess, dead, changed, fatal, last := t.sess, t.dead, t.changed, t.fatal, t.lastErr
		t.mu.Unlock()
		if fatal != nil {
			return nil, nil, fatal
		}
		if sess != nil && !sess.IsClosed() {
			return sess, dead, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			if last != nil {
				return nil, nil, fmt.Errorf("relay unreachable: %w", last)
			}
			return nil, nil, fmt.Errorf("relay connection: %w", ctx.Err())
		}
	}
}

// publish makes sess the live session (nil: none) and wakes waiters.
func (t *Tunnel) publish(sess *smux.Session, dead <-chan struct{}, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sess, t.dead, t.lastErr = sess, dead, err
	if sess != nil {
		t.dials++
	}
	close(t.changed)
	t.changed = make(chan struct{})
}

// dropSession forgets sess if it is still the published one.
func (t *Tunnel) dropSession(sess *smux.Session) {
	sess.Close()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sess == sess {
		t.sess = nil
	}
}

// fail ends the tunnel with err (the first error wins).
func (t *Tunnel) fail(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fatal != nil {
		return
	}
	t.fatal = err
	close(t.changed)
	t.changed = make(chan struct{})
	close(t.done)
}

// keep holds the mux connection: dial, serve until it breaks, back off,
// dial again, until Close or a refusal. first gets the result of the first
// dial.
func (t *Tunnel) keep(first chan<- error) {
	defer t.wg.Done()
	var b backoff.Backoff // internal/backoff: 250 ms doubling to 15 s, full jitter
	failing := false
	for {
		start := time.Now()
		sess, err := t.dialMux(t.ctx)
		if err != nil {
			if t.ctx.Err() != nil {
				return
			}
			if serr := sessionError(err); serr != err {
				t.fail(serr)
				report(&first, serr)
				return
			}
			t.publish(nil, nil, err)
			report(&first, nil)
			d := b.Next()
			if !failing {
				t.log.Warn("relay unreachable; reconnecting with backoff", "relay", t.o.Relay.list(), "err", err, "retry_in", d)
				failing = true
			} else {
				t.log.Debug("relay still unreachable", "retry_in", d, "err", err)
			}
			if !sleep(t.ctx, d) {
				return
			}
			continue
		}
		if failing {
			t.log.Info("reconnected to the relay", "relay", t.RelayAddr().String())
		} else {
			t.log.Debug("connected to the relay", "relay", t.RelayAddr().String())
		}
		failing = false
		dead := broken(sess)
		t.publish(sess, dead, nil)
		report(&first, nil)
		select {
		case <-dead:
		case <-t.ctx.Done():
			sess.Close()
			<-dead
			return
		}
		t.dropSession(sess)
		b.Done(start)
		d := b.Next()
		t.log.Warn("lost the relay connection; reconnecting", "relay", t.o.Relay.list(), "retry_in", d)
		failing = true
		if !sleep(t.ctx, d) {
			return
		}
	}
}

// broken is closed when sess can no longer carry streams. smux closes
// CloseChan only on Close or a keepalive timeout (30 s); a read error on
// the WebSocket (the relay closed it, e.g. on revoke) only fails
// AcceptStream. The relay never opens streams toward the CLI, so an
// AcceptStream that returns is the session's end.
func broken(sess *smux.Session) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		for {
			st, err := sess.AcceptStream()
			if err != nil {
				return
			}
			st.Close()
		}
	}()
	return ch
}

// report sends the outcome of the first dial to Open, once.
func report(first *chan<- error, err error) {
	if *first != nil {
		*first <- err
		*first = nil
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// sessionError turns a refusal that no retry can fix into its final form:
// 401 is the session itself (revoked, expired, unknown), any other 4xx a
// relay that does not serve this CLI, and so is a relay without the raw
// transport when only that was asked for. Other errors come back
// unchanged.
func sessionError(err error) error {
	if errors.Is(err, errRawNotOffered) {
		// Only --relay-transport raw gets here: auto falls back.
		return fmt.Errorf("%w; --relay-transport auto or ws use the WebSocket", err)
	}
	var re *RelayError
	if !errors.As(err, &re) {
		return err
	}
	switch {
	case re.Status == http.StatusUnauthorized:
		return &SessionRefusedError{Reason: re.Reason}
	case re.Status >= 400 && re.Status < 500 && re.Status != http.StatusRequestTimeout && re.Status != http.StatusTooManyRequests:
		return fmt.Errorf("the relay refused the CLI tunnel: %w", err)
	}
	return err
}

// dialMux opens the mux connection, by the raw transport or the
// WebSocket of /api/cli/mux as Options.Transport says, and starts the
// smux client on its byte stream.
func (t *Tunnel) dialMux(ctx context.Context) (*smux.Session, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var c net.Conn
	used, err := TransportRaw, errRawNotOffered
	if t.o.Transport != TransportWS {
		c, err = dialRaw(ctx, t.o.Relay, t.onWin)
	}
	if errors.Is(err, errRawNotOffered) && t.o.Transport != TransportRaw {
		if t.o.Transport == TransportAuto && t.fellBack.CompareAndSwap(false, true) {
			t.log.Info("using the WebSocket transport", "reason", err)
		}
		used = TransportWS
		c, err = dialWebSocket(ctx, t.ws, t.o.Relay, "/api/cli/mux", "", nil, "/api/cli/mux")
	}
	if err != nil {
		return nil, err
	}
	t.transport.Store(used)
	sess, err := smux.Client(c, mux.Config())
	if err != nil {
		c.Close()
		return nil, err
	}
	return sess, nil
}

// DialRawTunnel opens one tunnel to the plan address ip:port of the CLI
// session r.Token over its own WebSocket (/api/cli/raw-tunnel/{ip}/{port}):
// the simple protocol, for clients that do not multiplex.
func DialRawTunnel(ctx context.Context, r Relay, ip string, port uint16) (net.Conn, error) {
	c := r.wsHTTPClient(nil)
	defer c.CloseIdleConnections()
	path := "/api/cli/raw-tunnel/" + url.PathEscape(ip) + "/" + portString(port)
	return dialWebSocket(ctx, c, r, path, "", nil, path)
}

// refreshLoop fetches the plan every refresh interval and applies it. A
// refusal ends the tunnel; other failures keep the current plan.
func (t *Tunnel) refreshLoop() {
	defer t.wg.Done()
	tick := time.NewTicker(t.refresh)
	defer tick.Stop()
	failing := false
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-tick.C:
		}
		p, err := fetchPlan(t.ctx, t.client, t.o.Relay)
		if err != nil {
			if t.ctx.Err() != nil {
				return
			}
			if serr := sessionError(err); serr != err {
				t.fail(serr)
				return
			}
			if !failing {
				t.log.Warn("plan refresh failed; keeping the current plan", "err", err)
				failing = true
			}
			continue
		}
		if failing {
			t.log.Info("plan refresh works again")
			failing = false
		}
		t.applyPlan(p)
	}
}

// applyPlan logs what changed, switches to p and re-syncs the listeners,
// which also retries every bind that failed before.
func (t *Tunnel) applyPlan(p Plan) {
	old := indexPlan(*t.plan.Load())
	changed := false
	for _, e := range p.Entries {
		o, ok := old[e.Addr()]
		switch {
		case !ok:
			t.log.Info("plan: added "+e.String(), "label", e.Label, "device", e.DeviceID)
			changed = true
		case o != e:
			t.log.Info("plan: changed "+e.String(), "label", e.Label, "device", e.DeviceID)
			changed = true
		}
		delete(old, e.Addr())
	}
	for _, e := range old {
		t.log.Info("plan: removed "+e.String(), "label", e.Label, "device", e.DeviceID)
		changed = true
	}
	t.setPlan(p)
	if t.lns != nil {
		t.lns.sync(p.Entries)
	}
	if changed && t.o.OnPlan != nil {
		t.o.OnPlan(t.Entries())
	}
}

func (t *Tunnel) setPlan(p Plan) {
	x := indexPlan(p)
	addrs := make(map[netip.AddrPort]bool, len(x))
	for ap := range x {
		addrs[ap] = true
	}
	t.plan.Store(&p)
	t.index.Store(&x)
	t.addrs.Store(&addrs)
}

// track registers a local connection so Close can end it; the returned
// func unregisters it. It refuses (false) once the tunnel is closing.
func (t *Tunnel) track(c net.Conn) (untrack func(), ok bool) {
	t.cmu.Lock()
	defer t.cmu.Unlock()
	if t.ctx.Err() != nil {
		return nil, false
	}
	t.conns[c] = struct{}{}
	return func() {
		t.cmu.Lock()
		delete(t.conns, c)
		t.cmu.Unlock()
	}, true
}

// forward serves one local connection to plan address ap: a stream
// through the mux, then bytes both ways with half-close.
//
// The client's bytes go out right after the open, before the relay's
// status (earlyStream): the status waits for the agent's dial, so a
// synchronous open held them back a full CLI->relay->agent round trip
// (p50 2.8 ms per open in docs/perf.md). A relay cut mid-open is therefore
// not retried on the next session here, unlike DialPlan: the bytes
// already sent may be lost, so the client sees the reset instead.
//
// It returns once the bytes flow (pipe.JoinAsync) and calls done when
// the connection has ended: an idle connection then holds no goroutine
// here but one parked on the client's socket with a small stack.
func (t *Tunnel) forward(c net.Conn, ap netip.AddrPort, done func()) {
	pipe.ReserveStack()
	ctx, cancel := context.WithTimeout(t.ctx, dialTimeout)
	st, _, err := t.openStream(ctx, ap)
	cancel()
	if err != nil {
		t.logDialError(ap, err)
		reset(c)
		done()
		return
	}
	pipe.JoinAsync(c, &earlyStream{Stream: mux.NewStream(st), raw: st, t: t, ap: ap}, nil, nil, func(error) { done() })
}

// logDialError logs a failed local connection with the relay's reason.
func (t *Tunnel) logDialError(ap netip.AddrPort, err error) {
	if t.ctx.Err() != nil {
		return
	}
	t.log.Warn("connection to "+ap.String()+" failed", "err", err)
}

// reset closes a local connection with RST, so the tool sees a refused
// connection rather than a clean, empty answer.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}
