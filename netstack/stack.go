package netstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/nanodems/connector/internal/pipe"
)

// Dialer reaches the device port behind a plan address: the CLI's
// cli.Tunnel.DialPlan. ip is the dotted plan address ("127.0.0.2"). The
// returned conn should support CloseWrite so half-close crosses the tunnel.
type Dialer func(ctx context.Context, ip string, port uint16) (net.Conn, error)

// Planner returns the current plan: the 127.0.0.X:port tuples the
// operator may reach. It is called once per incoming SYN and, in --tun
// mode, every PlanPoll to update the host routes, so it must be cheap:
// return a snapshot map that is never mutated afterwards (swap a new one in
// on refresh) rather than copying. A nil Planner lets every address through
// to the Dialer, which then decides.
type Planner func() map[netip.AddrPort]bool

// Tuning, chosen from BenchmarkPath (docs/perf-netstack.md has the runs);
// each figure is the one that moved the measurement, not a guess.
const (
	// MTU of the TUN interface and the gVisor NIC. 65535 is the largest a
	// TUN device takes, and the path never leaves the machine, so nothing
	// fragments: each packet costs one syscall and one pass through both
	// stacks whatever its size. Measured (BenchmarkPath, one download):
	// MTU 1500 ~10,500 µs of CPU per MiB (74 MB/s), 9000 ~3,200 µs
	// (310 MB/s), 65535 ~1,400 µs (600–900 MB/s).
	MTU = 65535

	// Per-connection buffers: gVisor's own defaults (1 MiB, growing to
	// 4 MiB with receive-buffer moderation on) measured best. A 1 MiB
	// ceiling (256 KiB default) cost a single download 45 % of its
	// throughput (235 against 420 MB/s, median of 3); a 16 MiB ceiling
	// bought nothing (the loopback RTT is ~50 µs, so 4 MiB is many times
	// the bandwidth-delay product), and moderation off was no better, so
	// memory stays bounded and an idle connection keeps small buffers.
	rcvBufMin, rcvBufDefault, rcvBufMax = 4 << 10, 1 << 20, 4 << 20
	sndBufMin, sndBufDefault, sndBufMax = 4 << 10, 1 << 20, 4 << 20

	// maxInFlight bounds the SYNs waiting for their Dialer at once; beyond
	// it new SYNs are dropped and the client's retransmit retries them. A
	// tool opening 100 connections at once (a VMS adding a camera wall)
	// stays well under it, and a SYN flood from a broken tool cannot start
	// unbounded dials to the relay.
	maxInFlight = 512

	// DialTimeout bounds one Dialer call; the tool's own connect timeout
	// is usually longer (Linux gives up on SYN retries after ~127 s), so
	// the tool sees a prompt refusal rather than a hang.
	DialTimeout = 20 * time.Second

	// maxRejectLog bounds the set of rejected addresses remembered for
	// "log once", so a port scan of 127.0.0.0/8 cannot grow it forever.
	maxRejectLog = 4096

	// dialLogEvery spaces the "dial failed" lines of one address: a VMS
	// retrying an offline camera every second must not flood the log.
	dialLogEvery = time.Minute
)

var (
	loopbackNet = netip.MustParsePrefix("127.0.0.0/8")
	loopbackOne = netip.MustParseAddr("127.0.0.1")
)

// Options configure a Stack.
type Options struct {
	// Logger receives "rejecting unknown loopback …" and dial failures;
	// nil means slog.Default().
	Logger *slog.Logger
	// DialTimeout overrides the package default.
	DialTimeout time.Duration
	// MTU is the TUN interface's MTU; zero means MTU.
	MTU uint32
}

// Stack is a gVisor TCP/IP stack on a TUN descriptor. Every TCP SYN that
// arrives is checked against the plan; a plan address is dialed through
// the Dialer and, once the dial succeeds, the handshake completes and bytes
// are piped both ways with half-close (pipe.Join). A SYN to anything else,
// or one whose dial fails, is answered with RST, as a closed port would.
type Stack struct {
	s       *stack.Stack
	dial    Dialer
	plan    Planner
	log     *slog.Logger
	timeout time.Duration
	release func() error // closes the link's descriptors
	link    stack.LinkEndpoint

	ctx    context.Context // canceled by Close: aborts in-flight dials
	cancel context.CancelFunc

	mu       sync.Mutex
	closed   bool
	wg       sync.WaitGroup          // one per forwarder handler past the closed check
	conns    map[*conn]net.Conn      // live pipes: stack side → dialed side
	rejected map[netip.AddrPort]bool // logged once
	dialLog  map[netip.AddrPort]time.Time
	stats    Stats
}

// Stats counts what the stack did.
type Stats struct {
	Accepted   uint64 // connections piped to the Dialer
	Rejected   uint64 // SYNs to addresses outside the plan
	DialFailed uint64 // SYNs whose Dialer call failed
	Active     int    // connections piped now
}

// newStack builds the stack on ep. release closes the descriptors behind
// ep; Close calls it once the link endpoint has stopped using them (on
// error, the caller does).
func newStack(ep stack.LinkEndpoint, release func() error, dial Dialer, plan Planner, opt Options) (*Stack, error) {
	if dial == nil {
		return nil, errors.New("netstack: nil Dialer")
	}
	st := &Stack{
		link:     ep,
		dial:     dial,
		plan:     plan,
		log:      opt.Logger,
		timeout:  opt.DialTimeout,
		release:  release,
		conns:    make(map[*conn]net.Conn),
		rejected: make(map[netip.AddrPort]bool),
		dialLog:  make(map[netip.AddrPort]time.Time),
	}
	if st.log == nil {
		st.log = slog.Default()
	}
	if st.timeout <= 0 {
		st.timeout = DialTimeout
	}
	st.ctx, st.cancel = context.WithCancel(context.Background())

	st.s = stack.New(stack.Options{
		// Loopback addresses arrive on a non-loopback NIC by design.
		NetworkProtocols: []stack.NetworkProtocolFactory{ipv4.NewProtocolWithOptions(ipv4.Options{AllowExternalLoopbackTraffic: true})},
		// UDP only so that a datagram to a plan address draws an ICMP
		// port-unreachable at once: an RTSP player trying UDP transport
		// then falls back to TCP interleaved instead of waiting out its
		// timeout.
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	fail := func(what string, err tcpip.Error) (*Stack, error) {
		st.s.Destroy()
		return nil, fmt.Errorf("netstack: %s: %s", what, err)
	}
	for _, o := range []tcpip.SettableTransportProtocolOption{
		// SACK: free when nothing is lost, as here, and it keeps a
		// loss from costing a window should the TUN queue ever drop.
		ptr(tcpip.TCPSACKEnabled(true)),
		ptr(tcpip.TCPModerateReceiveBufferOption(true)),
		&tcpip.TCPReceiveBufferSizeRangeOption{Min: rcvBufMin, Default: rcvBufDefault, Max: rcvBufMax},
		&tcpip.TCPSendBufferSizeRangeOption{Min: sndBufMin, Default: sndBufDefault, Max: sndBufMax},
		// Nagle off: the tools are interactive (RTSP requests, ONVIF
		// SOAP, SDK commands) and the kernel client already coalesces.
		ptr(tcpip.TCPDelayEnabled(false)),
	} {
		if err := st.s.SetTransportProtocolOption(tcp.ProtocolNumber, o); err != nil {
			return fail("TCP option", err)
		}
	}
	// The forwarder goes in before the NIC exists: CreateNIC starts the
	// dispatch goroutines, and the handler field is not synchronized.
	fwd := tcp.NewForwarder(st.s, rcvBufDefault, maxInFlight, st.handle)
	st.s.SetTransportProtocolHandler(tcp.ProtocolNumber, fwd.HandlePacket)
	const nic = 1
	if err := st.s.CreateNICWithOptions(nic, ep, stack.NICOptions{Disabled: true}); err != nil {
		return fail("NIC", err)
	}
	// Promiscuous: accept packets for any address, so 127.0.0.X need not
	// be configured one by one as the plan changes. Spoofing: answer from
	// that same address.
	if err := st.s.SetPromiscuousMode(nic, true); err != nil {
		return fail("promiscuous mode", err)
	}
	if err := st.s.SetSpoofing(nic, true); err != nil {
		return fail("spoofing", err)
	}
	st.s.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: nic}})
	if err := st.s.EnableNIC(nic); err != nil {
		return fail("enabling the NIC", err)
	}
	return st, nil
}

func ptr[T any](v T) *T { return &v }

// handle runs on its own goroutine (tcp.Forwarder starts one per SYN).
func (st *Stack) handle(r *tcp.ForwarderRequest) {
	id := r.ID()
	dst := netip.AddrPortFrom(netip.AddrFrom4(id.LocalAddress.As4()), id.LocalPort)

	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		r.Complete(true)
		return
	}
	st.wg.Add(1)
	st.mu.Unlock()
	defer st.wg.Done()

	if st.plan != nil && !st.plan()[dst] {
		st.reject(dst)
		r.Complete(true)
		return
	}
	ctx, cancel := context.WithTimeout(st.ctx, st.timeout)
	up, err := st.dial(ctx, dst.Addr().String(), dst.Port())
	cancel()
	if err != nil {
		now := time.Now()
		st.mu.Lock()
		st.stats.DialFailed++
		last, seen := st.dialLog[dst]
		logIt := now.Sub(last) >= dialLogEvery && (seen || len(st.dialLog) < maxRejectLog)
		if logIt {
			st.dialLog[dst] = now
		}
		st.mu.Unlock()
		if logIt && st.ctx.Err() == nil {
			st.log.Warn("dial failed", "addr", dst.String(), "err", err)
		}
		r.Complete(true)
		return
	}
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		// The client gave up (RST, timeout) while we dialed.
		r.Complete(true)
		up.Close()
		return
	}
	r.Complete(false)
	c := newConn(&wq, ep)

	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		c.Abort(nil)
		up.Close()
		return
	}
	st.conns[c] = up
	st.stats.Accepted++
	st.mu.Unlock()

	pipe.Join(c, up, nil, nil)

	st.mu.Lock()
	delete(st.conns, c)
	st.mu.Unlock()
}

// reject logs the first SYN to each address outside the plan; the spec's
// troubleshooting section names this exact line.
func (st *Stack) reject(dst netip.AddrPort) {
	st.mu.Lock()
	st.stats.Rejected++
	first := !st.rejected[dst] && len(st.rejected) < maxRejectLog
	if first {
		st.rejected[dst] = true
	}
	st.mu.Unlock()
	if !first {
		return
	}
	if loopbackNet.Contains(dst.Addr()) {
		st.log.Warn("rejecting unknown loopback " + dst.String())
	} else {
		st.log.Warn("rejecting non-loopback destination " + dst.String())
	}
}

// Stats returns the counters so far.
func (st *Stack) Stats() Stats {
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.stats
	s.Active = len(st.conns)
	return s
}

// Close aborts every connection (the tool's side sees RST, the device's
// side a close), stops the stack's goroutines and waits for them, then
// closes the TUN descriptors. It returns once nothing of the Stack runs.
func (st *Stack) Close() error {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return nil
	}
	st.closed = true
	conns := make([]*conn, 0, len(st.conns))
	ups := make([]net.Conn, 0, len(st.conns))
	for c, up := range st.conns {
		conns = append(conns, c)
		ups = append(ups, up)
	}
	st.mu.Unlock()
	st.cancel()
	for i := range conns {
		conns[i].Abort(nil)
		ups[i].Close()
	}
	// The link's inbound loop stops first, outside the stack's lock:
	// Destroy removes the NIC with that lock held and waits for the loop
	// (Attach(nil)), and a packet the loop is delivering at that moment
	// may need the lock (a RST's FindRoute). TestServeTUN deadlocked so,
	// 3 times in 40 runs on a loaded machine.
	if rs, ok := st.link.(interface{ stopReading() }); ok {
		rs.stopReading()
	}
	// Destroy aborts all endpoints, then removes the NIC.
	st.s.Destroy()
	st.wg.Wait()
	return st.release()
}

// conn is a gonet.TCPConn that pipe.Copy can wait on without holding a
// buffer (pipe.ReadWaiter), and that pipe.Join can cut with a RST (pipe.Aborter).
// An idle tunnel then pins no 64 KiB copy buffer on the stack side, as on
// the smux side: the idle cost DESIGN.md asks to know.
type conn struct {
	*gonet.TCPConn
	ep    tcpip.Endpoint
	wq    *waiter.Queue
	entry waiter.Entry
	ready <-chan struct{}
}

const readMask = waiter.ReadableEvents | waiter.EventHUp | waiter.EventErr

func newConn(wq *waiter.Queue, ep tcpip.Endpoint) *conn {
	c := &conn{TCPConn: gonet.NewTCPConn(wq, ep), ep: ep, wq: wq}
	c.entry, c.ready = waiter.NewChannelEntry(readMask)
	return c
}

// WaitRead blocks until a Read would not block: data, EOF, reset or close.
func (c *conn) WaitRead() error {
	if c.ep.Readiness(readMask) != 0 {
		return nil
	}
	c.wq.EventRegister(&c.entry)
	defer c.wq.EventUnregister(&c.entry)
	for c.ep.Readiness(readMask) == 0 {
		<-c.ready
	}
	return nil
}

// Abort resets the connection: the tool sees ECONNRESET, not a clean EOF,
// when the device side broke.
func (c *conn) Abort(error) error {
	c.ep.SocketOptions().SetLinger(tcpip.LingerOption{Enabled: true, Timeout: 0})
	c.ep.Close()
	return nil
}
