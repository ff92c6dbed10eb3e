package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xtaci/smux"

	"github.com/nanodems/connector/internal/pipe"
	"github.com/nanodems/connector/mux"
	"github.com/nanodems/connector/relay/handle"
	"github.com/nanodems/connector/relay/store"
)

// Errors of Dial. Access paths map them to their protocol's status with
// HTTPStatus (or an RTSP equivalent); the messages are the one-line
// reasons operators see.
var (
	ErrUnknownHandle = errors.New("unknown or revoked handle")
	ErrOtherTenant   = errors.New("handle does not belong to your tenant")
	ErrAgentOffline  = errors.New("agent reconnecting")
	ErrNotAllowed    = errors.New("target not in allowlist")
	ErrUnreachable   = errors.New("device unreachable")
	ErrTimeout       = errors.New("device did not answer in time")
)

// Principal is who asks: an admin key (crosses tenants), or a user or
// token pinned to one tenant.
type Principal struct {
	Admin    bool
	TenantID string
	UserID   string
	Actor    string // for the audit log
	// Cred is the id of the revocable credential the request came with
	// (credConns): what it opens ends when that credential is revoked.
	// Empty for the admin key and passwords.
	Cred string
}

func (p Principal) canAccess(tenantID string) bool { return p.Admin || p.TenantID == tenantID }

// DialOptions tune one tunnel.
type DialOptions struct {
	Flags uint8 // mux header flags
	// Path is the access path that dials, for the tunnel counters
	// (docs/metrics.md); it changes nothing else.
	Path AccessPath
}

// A Dialer reaches a device port on behalf of a principal. It is what the
// access paths (browser proxy, WebSocket tunnel, CLI mux, RTSP gateway)
// depend on, so that whatever stands behind it — this relay's agent
// sessions, a bridge to the relay that holds the agent, a test double —
// changes none of them.
type Dialer interface {
	// Dial opens a tunnel to the device port behind handle h, or fails
	// with one of the errors above. The conn supports CloseWrite.
	Dial(ctx context.Context, p Principal, h string, o DialOptions) (net.Conn, error)
}

var _ Dialer = (*Server)(nil)

// A resolver tells where a handle leads: the parts of the edge that show
// or check a device before they dial it (the browser proxy's camera host,
// an RTSP URL's tenant, a CLI's remembered address) ask it, so that the
// route cache and the access check stay in one place.
type resolver interface {
	// route is handle h's live route if p may use it (Dial's check).
	route(ctx context.Context, p Principal, h string) (store.Route, error)
	// resolve is handle h's live route, whoever asks.
	resolve(ctx context.Context, h string) (store.Route, error)
}

var _ resolver = (*Server)(nil)

// Dial opens a tunnel to the device port behind handle h on behalf of p.
// The returned conn supports CloseWrite (half-close).
//
// Every access path's tunnels are counted here, by path and result
// (accesspath.go), and by the conn it returns (bytes, open tunnels).
func (s *Server) Dial(ctx context.Context, p Principal, h string, o DialOptions) (net.Conn, error) {
	m := s.metrics.path(o.Path)
	r, err := s.route(ctx, p, h)
	if err != nil {
		m.dialed(err)
		return nil, err
	}
	c, err := s.dialRoute(ctx, r, o)
	m.dialed(err)
	return c, err
}

// route is handle h's live route if p may use it: the one access check of
// every path, before it dials or shows anything of the device.
func (s *Server) route(ctx context.Context, p Principal, h string) (store.Route, error) {
	r, err := s.resolve(ctx, h)
	if err != nil {
		return r, err
	}
	if !p.canAccess(r.TenantID) {
		return r, ErrOtherTenant
	}
	return r, nil
}

// resolve maps a handle to its live route, from memory when it can.
func (s *Server) resolve(ctx context.Context, h string) (store.Route, error) {
	if _, err := handle.Parse(h); err != nil {
		return store.Route{}, ErrUnknownHandle
	}
	var r store.Route
	if v, ok := s.routes.Load(h); ok {
		r = v.(store.Route)
	} else {
		var err error
		r, err = s.store.ResolveHandle(ctx, h)
		if errors.Is(err, store.ErrNotFound) {
			return r, ErrUnknownHandle
		}
		if err != nil {
			return r, fmt.Errorf("resolve handle: %w", err)
		}
		s.routes.Store(h, r)
	}
	if r.RevokedAt != nil || (r.ExpiresAt != nil && !s.cfg.Now().Before(*r.ExpiresAt)) {
		return r, ErrUnknownHandle
	}
	return r, nil
}

// invalidateRoutes drops cached routes after any device or handle change.
// Changes are rare next to tunnel opens, so clearing all is the simple and
// always-correct choice.
func (s *Server) invalidateRoutes() { s.routes.Clear() }

// openStatuser is a tunnel that can tell the reason of its agent's OK
// status (a UDP relay's ports, mux.FlagUDP): a local tunnel or a bridge.
type openStatuser interface {
	openStatus() string
}

// dialRoute picks an agent (the handle's pinned one while it is online,
// on this relay or another; else the site's least loaded online agent),
// and opens the tunnel through it: a stream of this relay's agent
// session, or a bridge to the relay that holds the agent (bridge.go).
func (s *Server) dialRoute(ctx context.Context, r store.Route, o DialOptions) (net.Conn, error) {
	if a := s.agents.get(r.AgentID); a != nil && a.siteID == r.SiteID {
		return s.openOn(ctx, a, r, o)
	}
	// Agents whose lease names a relay that did not answer for them: a
	// relay killed or cut off deletes none of its leases, so they name it
	// until they expire. Such an agent is offline as far as this open is
	// concerned, and the site's other agents stand in for it.
	gone := map[string]bool{}
	var lastErr error // the last such relay's failure
	if l, ok := s.remoteLease(ctx, r.AgentID, r.SiteID); ok {
		c, err := s.bridge.dial(ctx, l, r, o)
		if !errors.Is(err, ErrAgentOffline) || ctx.Err() != nil {
			return c, err
		}
		s.log.Info("pinned agent's relay does not answer for it; another agent of the site stands in", "handle", r.Handle, "agent", l.AgentID, "relay", l.RelayNode, "err", err)
		gone[l.AgentID], lastErr = true, err
	}
	for {
		c, dead, err := s.dialLeastLoaded(ctx, &r, o, gone)
		switch {
		case dead != nil:
			gone[dead.AgentID], lastErr = true, err
		case errors.Is(err, ErrAgentOffline) && lastErr != nil:
			return nil, lastErr
		default:
			return c, err
		}
	}
}

// dialLeastLoaded opens r on the site's least-loaded online agent but
// those in gone, pinning r to it if r has no pin yet. When that agent is
// another relay's and the relay does not answer for it, it returns the
// agent's lease as dead, so that the caller tries the next agent.
func (s *Server) dialLeastLoaded(ctx context.Context, r *store.Route, o DialOptions, gone map[string]bool) (c net.Conn, dead *store.Lease, err error) {
	local, remote := s.leastLoaded(ctx, r.SiteID, gone)
	if local == nil && remote == nil {
		return nil, nil, ErrAgentOffline
	}
	chosen := ""
	if local != nil {
		chosen = local.id
	} else {
		chosen = remote.AgentID
	}
	if r.AgentID == "" {
		// Pin on first use so a camera does not bounce between agents;
		// a pinned agent that is offline is stood in for, not replaced.
		if pinned, err := s.store.PinHandle(ctx, r.Handle, chosen); err == nil {
			r.AgentID = pinned
			s.routes.Store(r.Handle, *r)
		}
	}
	if local != nil {
		c, err := s.openOn(ctx, local, *r, o)
		return c, nil, err
	}
	c, err = s.bridge.dial(ctx, *remote, *r, o)
	if errors.Is(err, ErrAgentOffline) && ctx.Err() == nil {
		return nil, remote, err
	}
	return c, nil, err
}

// openOn opens a tunnel to r's target through a, an agent session of this
// relay, and waits for the agent's status.
func (s *Server) openOn(ctx context.Context, a *agentSession, r store.Route, o DialOptions) (net.Conn, error) {
	st, err := mux.OpenTunnel(a.sess, mux.Header{Flags: o.Flags, Host: r.Host, Port: uint16(r.Port)})
	if err != nil {
		if errors.Is(err, mux.ErrBadHeader) {
			return nil, err
		}
		return nil, ErrAgentOffline
	}
	a.active.Add(1)
	m := s.metrics.path(o.Path)
	m.open.Add(1)
	// Registered before the status is read: an agent asked for a
	// dedicated connection (mux.FlagDedicated) dials it as soon as it has
	// sent its status (attachDedicated also waits a moment for a tunnel
	// it does not know yet).
	c := &tunnelConn{Stream: mux.NewStream(st), agent: a, handle: r.Handle, s: s, meter: m}
	if !a.addTunnel(st.ID(), c) {
		st.Close()
		a.active.Add(-1)
		m.open.Add(-1)
		return nil, ErrAgentOffline
	}
	status, err := awaitStatus(ctx, st)
	if err != nil {
		// Close, not a cleanup of its own: the session's end may be
		// cutting the tunnel at this moment, and counts must drop once.
		c.Close()
		return nil, err
	}
	c.status = status
	s.live.Store(c, struct{}{})
	if c.closed.Load() {
		s.live.Delete(c) // cut while it opened: Close has run already
	}
	return c, nil
}

// openTimeout bounds the wait for the agent's status when ctx has no
// deadline: the agent's own LAN dial gives up after 5 s.
const openTimeout = 15 * time.Second

// awaitStatus reads the agent's status on a stream opened with its header;
// it returns the reason of an OK status (a UDP relay's ports, mux.FlagUDP).
func awaitStatus(ctx context.Context, st *smux.Stream) (string, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(openTimeout)
	}
	st.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { st.SetDeadline(time.Now()) })
	defer stop()
	status, err := mux.ReadStatusReason(st)
	st.SetDeadline(time.Time{})
	var se *mux.StatusError
	switch {
	case err == nil:
		return status, nil
	case errors.As(err, &se):
		switch se.Code {
		case mux.NotAllowed:
			return "", fmt.Errorf("%w: %s", ErrNotAllowed, se.Reason)
		case mux.TimedOut:
			return "", fmt.Errorf("%w: %s", ErrTimeout, se.Reason)
		case mux.Refused:
			return "", errRefused
		default:
			return "", fmt.Errorf("%w: %s", ErrUnreachable, se.Error())
		}
	case ctx.Err() != nil:
		return "", ctx.Err()
	default:
		return "", fmt.Errorf("%w: %v", ErrTimeout, err)
	}
}

// tunnelConn is a tunnel: a framed stream that keeps its agent's count of
// active tunnels right, and its access path's counters (Read, Write and
// WriteFrame add what they carry; the stream's other methods, WaitRead
// among them, are promoted untouched).
type tunnelConn struct {
	*mux.Stream
	agent  *agentSession
	handle string
	s      *Server
	meter  *pathMeter
	status string // the reason of the agent's OK status
	once   sync.Once
	closed atomic.Bool
	// socket is the TCP connection under the tunnel's dedicated TLS
	// connection, once it has one.
	socket atomic.Pointer[net.Conn]
}

func (c *tunnelConn) openStatus() string { return c.status }

func (c *tunnelConn) Read(p []byte) (int, error) {
	n, err := c.Stream.Read(p)
	if n > 0 {
		c.meter.fromDevice.Add(uint64(n))
	}
	return n, err
}

// TryRead is the stream's (pipe.InlineSource), counted as Read counts.
func (c *tunnelConn) TryRead(p []byte) (int, error) {
	n, err := c.Stream.TryRead(p)
	if n > 0 {
		c.meter.fromDevice.Add(uint64(n))
	}
	return n, err
}

func (c *tunnelConn) Write(p []byte) (int, error) {
	n, err := c.Stream.Write(p)
	if n > 0 {
		c.meter.toDevice.Add(uint64(n))
	}
	return n, err
}

// WriteFrame is the stream's (pipe.FrameWriter), counting the payload.
func (c *tunnelConn) WriteFrame(b []byte) error {
	err := c.Stream.WriteFrame(b)
	if err == nil {
		header, _ := c.Stream.FrameLayout()
		c.meter.toDevice.Add(uint64(len(b) - header))
	}
	return err
}

// TryWriteFrame is the stream's (pipe.InlineFrameWriter), counted as
// WriteFrame counts.
func (c *tunnelConn) TryWriteFrame(b []byte, from pipe.InlineSource) (bool, error) {
	sent, err := c.Stream.TryWriteFrame(b, from)
	if sent && err == nil {
		header, _ := c.Stream.FrameLayout()
		c.meter.toDevice.Add(uint64(len(b) - header))
	}
	return sent, err
}

func (c *tunnelConn) Close() error {
	c.once.Do(func() {
		c.closed.Store(true)
		c.meter.open.Add(-1)
		c.agent.active.Add(-1)
		c.agent.tunnels.Delete(c.ID())
		c.s.live.Delete(c)
	})
	return c.Stream.Close()
}

// cut ends the tunnel at once, because its agent session is gone. The
// socket of a dedicated connection is closed first, under TLS: a TLS close
// would write close_notify, and to a frozen agent whose socket buffer is
// full that write blocks for up to 5 s.
func (c *tunnelConn) cut() {
	if sock := c.socket.Load(); sock != nil {
		(*sock).Close()
	}
	c.Close()
}

// cutRevoked closes the live tunnels whose handle no longer resolves (its
// device was deleted or lost the port, or the handle was revoked or
// rotated): removing a device ends its open sessions, not only future
// ones. It returns how many it closed.
func (s *Server) cutRevoked(ctx context.Context) int {
	n := 0
	s.live.Range(func(k, _ any) bool {
		c := k.(*tunnelConn)
		if _, err := s.resolve(ctx, c.handle); errors.Is(err, ErrUnknownHandle) {
			c.Close()
			n++
		}
		return true
	})
	return n
}

// afterHandleRevoked acts on a handle revoked or rotated in the store:
// cached routes are dropped and the tunnels open on the handle cut. It
// returns how many were cut.
func (s *Server) afterHandleRevoked(ctx context.Context) int {
	s.invalidateRoutes()
	return s.cutRevoked(ctx)
}
