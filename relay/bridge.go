package relay

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/xtaci/smux"

	"github.com/nanodems/connector/internal/acceptloop"
	"github.com/nanodems/connector/internal/pipe"
	"github.com/nanodems/connector/relay/bridgewire"
	"github.com/nanodems/connector/relay/pki"
	"github.com/nanodems/connector/relay/store"
)

// bridge is BridgeTunnel, both ends: the peer listener (gRPC over mTLS
// under the internal CA) that serves tunnels to this relay's agents for
// the other relays, and the pool of client connections, one per peer,
// through which Dial reaches an agent another relay holds. gRPC streams
// multiplex on one HTTP/2 connection, so a tunnel costs a stream, not a
// TLS handshake.
//
// What crosses the bridge is the tunnel's bytes, its half-closes, its
// first status and a cut. Dedicated connections (mux.FlagDedicated) stay
// between the holding relay and its agent: the bulk tunnel moves off the
// agent's shared session there, while the bridge stream is its own HTTP/2
// stream already, with its own flow-control window.
type bridge struct {
	s         *Server
	serverTLS *tls.Config
	clientTLS *tls.Config
	ln        net.Listener
	srv       *grpc.Server
	served    sync.WaitGroup

	// transport is how this relay's bridges leave: "smux" (the product)
	// or "grpc" (NANODEMS_BRIDGE_TRANSPORT=grpc, kept to measure the two
	// side by side); the peer listener serves both, by ALPN.
	transport string
	h2        *h2Listener // the peer listener's HTTP/2 connections, for gRPC
	ctx       context.Context
	cancel    context.CancelFunc

	mu      sync.Mutex
	peers   map[string]*grpc.ClientConn // gRPC's, by endpoint
	links   map[string]*peerLink        // smux's, by endpoint
	serving map[*smux.Session]struct{}  // sessions the peer listener serves
	closing bool

	// Counters (the agents list's relay entry; Prometheus names in docs/ha.md).
	open     atomic.Int64  // bridges open now, both roles
	opens    atomic.Uint64 // bridges opened, both roles
	bytes    atomic.Uint64 // bytes bridged, both directions, both roles
	failures atomic.Uint64 // opens that failed, both roles
}

// HTTP/2 flow-control windows of the bridge. gRPC's defaults (64 KiB,
// grown by its BDP estimator) hold a bulk tunnel back on a link with any
// delay; fixed windows this size let one stream fill a LAN between relays
// (docs/perf-ha.md). A stream's window bounds what one slow reader can
// leave queued in the relays.
var (
	bridgeStreamWindow int32 = 4 << 20
	bridgeConnWindow   int32 = 16 << 20
)

// bridgeBufferSize is the size of the HTTP/2 connection's read and write
// buffers: a 64 KiB tunnel write goes out in one socket write, not two.
const bridgeBufferSize = 128 << 10

// newBridge makes the peer side's TLS from the internal CA; it does not
// listen yet.
func newBridge(s *Server, ca *pki.CA, hosts []string) (*bridge, error) {
	leaf, err := ca.PeerCert(s.cfg.NodeName, hosts)
	if err != nil {
		return nil, err
	}
	return &bridge{
		s: s,
		serverTLS: &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{leaf},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    ca.Pool(),
			NextProtos:   []string{bridgewire.Protocol, "h2"},
		},
		clientTLS: &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{leaf},
			RootCAs:      ca.Pool(),
		},
		transport: bridgeTransport(),
		peers:     map[string]*grpc.ClientConn{},
		links:     map[string]*peerLink{},
		serving:   map[*smux.Session]struct{}{},
	}, nil
}

// bridgeTransport is the transport named by NANODEMS_BRIDGE_TRANSPORT,
// smux unless it says grpc.
func bridgeTransport() string {
	if os.Getenv("NANODEMS_BRIDGE_TRANSPORT") == "grpc" {
		return "grpc"
	}
	return "smux"
}

// start serves the peer listener on ln: TLS, then a bridge session or
// gRPC's HTTP/2 by ALPN (serveLink).
func (b *bridge) start(ln net.Listener) {
	b.ln = ln
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.h2 = newH2Listener(ln.Addr())
	// The TLS is done by serveLink: gRPC gets the connections decrypted.
	opts := []grpc.ServerOption{
		grpc.ForceServerCodecV2(bridgeCodec{}),
		grpc.WriteBufferSize(bridgeBufferSize),
		grpc.ReadBufferSize(bridgeBufferSize),
		experimental.BufferPool(bridgeBuffers),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	}
	if bridgeStreamWindow > 0 {
		opts = append(opts, grpc.InitialWindowSize(bridgeStreamWindow), grpc.InitialConnWindowSize(bridgeConnWindow))
	}
	b.srv = grpc.NewServer(opts...)
	b.srv.RegisterService(bridgeServiceDesc(b.serveTunnel), nil)
	b.served.Add(1)
	go func() {
		defer b.served.Done()
		if err := b.srv.Serve(b.h2); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			b.s.log.Error("peer listener (gRPC)", "err", err)
		}
	}()
	b.served.Add(1)
	go func() {
		defer b.served.Done()
		acceptloop.Serve(b.ctx, ln, b.s.log.With("listener", "peers"), func(c net.Conn) {
			b.served.Add(1)
			go b.serveLink(c)
		})
	}()
}

// close stops the listener, cuts the tunnels bridged in both directions
// and closes the pooled client connections.
func (b *bridge) close() {
	if b.ln != nil {
		b.ln.Close()
		b.cancel()
		b.h2.Close()
	}
	if b.srv != nil {
		b.srv.Stop()
	}
	b.mu.Lock()
	b.closing = true
	for sess := range b.serving {
		sess.Close()
	}
	links := b.links
	b.mu.Unlock()
	for _, l := range links {
		l.close()
	}
	b.served.Wait()
	b.mu.Lock()
	for ep, cc := range b.peers {
		cc.Close()
		delete(b.peers, ep)
	}
	b.mu.Unlock()
}

// peerConnectParams bound how long a peer link that failed stays down
// after its relay is back. gRPC's defaults start at 1 s and grow to 120 s,
// while an open on a link in backoff fails at once (503): a peer relay
// restarted after a minute would refuse bridged tunnels for up to two
// more. Retrying from 100 ms up to 2 s costs a dial attempt every 2 s to
// a relay that is gone, until its leases expire and nothing asks for it.
var peerConnectParams = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
	MinConnectTimeout: 5 * time.Second,
}

// peer is the pooled client connection to the relay at endpoint.
func (b *bridge) peer(endpoint string) (*grpc.ClientConn, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if cc := b.peers[endpoint]; cc != nil {
		return cc, nil
	}
	host, _, err := net.SplitHostPort(endpoint)
	if err != nil {
		return nil, fmt.Errorf("peer endpoint %q: %w", endpoint, err)
	}
	tc := b.clientTLS.Clone()
	tc.ServerName = host
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(credentials.NewTLS(tc)),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(bridgeCodec{})),
		grpc.WithWriteBufferSize(bridgeBufferSize),
		grpc.WithReadBufferSize(bridgeBufferSize),
		experimental.WithBufferPool(bridgeBuffers),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
		grpc.WithConnectParams(peerConnectParams),
	}
	if bridgeStreamWindow > 0 {
		opts = append(opts, grpc.WithInitialWindowSize(bridgeStreamWindow), grpc.WithInitialConnWindowSize(bridgeConnWindow))
	}
	cc, err := grpc.NewClient("passthrough:///"+endpoint, opts...)
	if err != nil {
		return nil, fmt.Errorf("peer %s: %w", endpoint, err)
	}
	b.peers[endpoint] = cc
	return cc, nil
}

// dial opens a tunnel to r's target through agent l.AgentID, held by the
// relay of lease l: the access check is done (Dial's route); the far
// relay re-checks that the handle resolves and that the agent is its own.
func (b *bridge) dial(ctx context.Context, l store.Lease, r store.Route, o DialOptions) (c net.Conn, err error) {
	if b.transport == "grpc" {
		c, err = b.dialStream(ctx, l, r, o)
	} else {
		c, err = b.dialSmux(ctx, l, r, o)
	}
	if err != nil {
		b.failures.Add(1)
		return nil, err
	}
	b.opens.Add(1)
	b.open.Add(1)
	return c, nil
}

// unreachable is the error of an open that could not reach the relay
// holding the agent. The caller's answer names that relay and says to
// retry; the transport's own words (the peer's address, gRPC's status)
// go to the log only, as they are no business of an operator's.
func (b *bridge) unreachable(l store.Lease, err error) error {
	b.s.log.Warn("bridge open failed", "relay", l.RelayNode, "endpoint", l.Endpoint, "agent", l.AgentID, "err", err)
	return fmt.Errorf("%w: relay %s, which holds the site's agent, cannot be reached", ErrAgentOffline, l.RelayNode)
}

func (b *bridge) dialStream(ctx context.Context, l store.Lease, r store.Route, o DialOptions) (*bridgeConn, error) {
	cc, err := b.peer(l.Endpoint)
	if err != nil {
		return nil, b.unreachable(l, err)
	}
	body, _ := json.Marshal(bridgeOpen{Handle: r.Handle, Agent: l.AgentID, Flags: o.Flags})
	// The stream outlives ctx (it lasts as long as the tunnel); ctx and
	// the open timeout bound only the open.
	sctx, cancel := context.WithCancel(context.Background())
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(openTimeout)
	}
	var timedOut atomic.Bool
	timer := time.AfterFunc(time.Until(deadline), func() { timedOut.Store(true); cancel() })
	stop := context.AfterFunc(ctx, cancel)
	fail := func(err error) (*bridgeConn, error) {
		timer.Stop()
		stop()
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if timedOut.Load() {
			return nil, fmt.Errorf("%w: relay %s did not answer in time", ErrTimeout, l.RelayNode)
		}
		return nil, err
	}
	st, err := cc.NewStream(sctx, &bridgeStreamDesc, bridgeMethod)
	if err != nil {
		return fail(b.unreachable(l, err))
	}
	if err := st.SendMsg(&frame{kind: frameOpen, body: body}); err != nil {
		return fail(b.unreachable(l, err))
	}
	var f frame
	if err := st.RecvMsg(&f); err != nil {
		return fail(b.unreachable(l, err))
	}
	if f.kind != frameStatus {
		return fail(fmt.Errorf("%w: relay %s answered frame %q", ErrAgentOffline, l.RelayNode, f.kind))
	}
	reason, err := decodeStatus(f.body)
	if err != nil {
		return fail(err)
	}
	if !timer.Stop() || !stop() {
		return fail(ctx.Err())
	}
	m := b.s.metrics.path(o.Path)
	m.open.Add(1)
	var ended sync.Once
	end := func() {
		ended.Do(func() {
			cancel()
			b.open.Add(-1)
			m.open.Add(-1)
		})
	}
	c := newBridgeConn(st, true, end, bridgeAddr("bridge:"+b.s.cfg.NodeName), bridgeAddr("bridge:"+l.RelayNode+"/"+l.AgentID), &b.bytes)
	c.status, c.meter = reason, m
	return c, nil
}

// serveTunnel is BridgeTunnel on the relay that holds the agent: read the
// open, dial through the agent session (openOn, after the re-check),
// answer the status, then join the two until both directions end.
func (b *bridge) serveTunnel(_ any, ss grpc.ServerStream) error {
	var f frame
	if err := ss.RecvMsg(&f); err != nil {
		return err
	}
	var o bridgeOpen
	if f.kind != frameOpen || json.Unmarshal(f.body, &o) != nil {
		return status.Error(codes.InvalidArgument, "the first frame must be an open")
	}
	ctx := ss.Context()
	conn, err := b.s.dialBridged(ctx, o)
	if err != nil {
		b.failures.Add(1)
		return ss.SendMsg(&frame{kind: frameStatus, body: encodeStatus("", err)})
	}
	reason := ""
	if sc, ok := conn.(openStatuser); ok {
		reason = sc.openStatus()
	}
	if err := ss.SendMsg(&frame{kind: frameStatus, body: encodeStatus(reason, nil)}); err != nil {
		conn.Close()
		return err
	}
	b.opens.Add(1)
	b.open.Add(1)
	defer b.open.Add(-1)
	ended := make(chan struct{})
	var once sync.Once
	end := func() { once.Do(func() { close(ended) }) }
	pc := newBridgeConn(ss, false, end, bridgeAddr("bridge:"+b.s.cfg.NodeName), bridgeAddr("bridge:peer"), &b.bytes)
	joined := make(chan struct{})
	go func() {
		defer close(joined)
		pipe.Join(conn, pc, nil, nil)
	}()
	select {
	case <-joined:
	case <-ended:
		// Aborted: return now, which ends the stream and unblocks a send
		// waiting for flow control; Join then ends.
	case <-ctx.Done():
		pc.closeNow()
		conn.Close()
	}
	return nil
}

// dialBridged dials for another relay that has done the access check: the
// handle must still resolve and the agent must be held here, at the
// handle's site.
// Its tunnels are counted under PathBridge.
func (s *Server) dialBridged(ctx context.Context, o bridgeOpen) (c net.Conn, err error) {
	defer func() { s.metrics.path(PathBridge).dialed(err) }()
	r, err := s.resolve(ctx, o.Handle)
	if err != nil {
		return nil, err
	}
	a := s.agents.get(o.Agent)
	if a == nil || a.siteID != r.SiteID {
		return nil, fmt.Errorf("%w: agent %s is not on relay %s", ErrAgentOffline, o.Agent, s.cfg.NodeName)
	}
	return s.openOn(ctx, a, r, DialOptions{Flags: o.Flags, Path: PathBridge})
}

// BridgeStats are the bridge's counters (docs/ha.md names their
// Prometheus forms).
type BridgeStats struct {
	Open     int64  `json:"bridges_open"`
	Opens    uint64 `json:"bridge_opens_total"`
	Bytes    uint64 `json:"bridge_bytes_total"`
	Failures uint64 `json:"bridge_failures_total"`
}

func (b *bridge) stats() BridgeStats {
	return BridgeStats{Open: b.open.Load(), Opens: b.opens.Load(), Bytes: b.bytes.Load(), Failures: b.failures.Load()}
}
