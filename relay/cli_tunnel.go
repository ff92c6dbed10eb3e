package relay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/xtaci/smux"

	"github.com/nanodems/connector/internal/pipe"
	"github.com/nanodems/connector/internal/wsconn"
	"github.com/nanodems/connector/mux"
	"github.com/nanodems/connector/relay/store"
)

// cliPlanEntry is one (loopback address, port) of a CLI's bind plan.
type cliPlanEntry struct {
	IP       string `json:"ip"`
	Port     int    `json:"port"`
	Handle   string `json:"handle"`
	Label    string `json:"label"`
	DeviceID string `json:"device_id"`
	SiteID   string `json:"site_id"`
}

// handleCLIPlan serves GET /api/cli/sessions/plan: every device port of
// the session's sites, at the device's loopback address. The CLI fetches
// it at start and every refresh_seconds; each fetch is a use that slides
// the session.
func (s *cliEdge) handleCLIPlan(w http.ResponseWriter, r *http.Request) {
	c, err := s.cliSession(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	entries, err := s.cliPlan(r.Context(), c)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"session_id": c.ID, "expires_at": c.ExpiresAt, "hard_cap_at": c.HardCapAt,
		"refresh_seconds": cliRefreshSeconds, "entries": entries,
	})
}

// cliPlan lists the live handles of the session's sites, one per device
// port (the newest, as ResolveLoopback picks), by address and port.
func (s *cliEdge) cliPlan(ctx context.Context, c store.CLISession) ([]cliPlanEntry, error) {
	now := s.cfg.Now()
	entries := []cliPlanEntry{}
	for _, siteID := range c.SiteIDs {
		site, err := s.store.GetSite(ctx, siteID)
		if errors.Is(err, store.ErrNotFound) || (err == nil && site.TenantID != c.TenantID) {
			continue
		}
		if err != nil {
			return nil, err
		}
		devs, err := s.store.ListDevices(ctx, siteID)
		if err != nil {
			return nil, err
		}
		for _, d := range devs {
			hs, err := s.store.ListHandles(ctx, d.ID)
			if err != nil {
				return nil, err
			}
			best := map[int]store.Handle{}
			for _, h := range hs {
				if (h.ExpiresAt != nil && !now.Before(*h.ExpiresAt)) || !slices.Contains(d.Ports, h.Port) {
					continue
				}
				if b, ok := best[h.Port]; !ok || h.CreatedAt.After(b.CreatedAt) || (h.CreatedAt.Equal(b.CreatedAt) && h.Handle < b.Handle) {
					best[h.Port] = h
				}
			}
			for port, h := range best {
				entries = append(entries, cliPlanEntry{IP: d.LoopbackIP, Port: port, Handle: h.Handle, Label: d.Label, DeviceID: d.ID, SiteID: siteID})
			}
		}
	}
	slices.SortFunc(entries, func(a, b cliPlanEntry) int {
		ia, _ := netip.ParseAddr(a.IP)
		ib, _ := netip.ParseAddr(b.IP)
		return cmp.Or(ia.Compare(ib), cmp.Compare(a.Port, b.Port))
	})
	return entries, nil
}

// dialCLI opens a tunnel to the device port a CLI knows as (ip, port),
// if that is in the session's scope: a live handle of a device of one of
// its sites. The tunnel then goes through Dial like every other access
// path.
//
// known, if not nil, remembers (ip, port) → handle for one mux connection,
// so only its first stream to an address pays the store lookup. A
// remembered handle is re-checked through resolve (memory, invalidated on
// every device change): once it is revoked, the store is asked again. A
// handle that still resolves names the same device port, since a loopback
// address is never given to another device.
func (s *cliEdge) dialCLI(ctx context.Context, c store.CLISession, ip string, port int, flags uint8, known *sync.Map) (net.Conn, error) {
	refuse := scopeError{ip: ip, port: port}
	key := net.JoinHostPort(ip, strconv.Itoa(port))
	var r store.Route
	if known == nil {
		known = &sync.Map{} // one stream: nothing to remember
	}
	if h, ok := known.Load(key); ok {
		var err error
		if r, err = s.routes.resolve(ctx, h.(string)); err != nil {
			known.Delete(key)
			r = store.Route{}
		}
	}
	if r.Handle == "" {
		var err error
		r, err = s.store.ResolveLoopback(ctx, ip, port, s.cfg.Now())
		if errors.Is(err, store.ErrNotFound) {
			return nil, refuse
		}
		if err != nil {
			return nil, err
		}
		known.Store(key, r.Handle)
	}
	if r.TenantID != c.TenantID || !slices.Contains(c.SiteIDs, r.SiteID) {
		return nil, refuse
	}
	conn, err := s.dialer.Dial(ctx, cliPrincipal(c), r.Handle, DialOptions{Flags: flags, Path: PathCLI})
	if errors.Is(err, ErrUnknownHandle) || errors.Is(err, ErrOtherTenant) {
		return nil, refuse // revoked between the lookup and the dial
	}
	return conn, err
}

// handleCLIRawTunnel serves GET /api/cli/raw-tunnel/{ip}/{port}: one
// tunnel per WebSocket, the internal/wsconn protocol of /api/tunnel, for
// simple clients. nanodems-tunnel itself multiplexes (/api/cli/mux). As
// with /api/tunnel, every refusal is an HTTP status before the upgrade.
func (s *cliEdge) handleCLIRawTunnel(w http.ResponseWriter, r *http.Request) {
	c, err := s.cliSession(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ip, port, err := parseCLITarget(r.PathValue("ip"), r.PathValue("port"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !isUpgrade(r) {
		// Refuse before dialing: a plain GET must not open a device port.
		writeJSON(w, http.StatusUpgradeRequired, map[string]string{"error": "this endpoint speaks WebSocket only"})
		return
	}
	if err := crossOrigin(r); err != nil { // before the dial, as on /api/tunnel
		s.writeError(w, r, err)
		return
	}
	conn, err := s.dialCLI(r.Context(), c, ip, port, 0, nil)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ws, err := websocket.Accept(smallHijack{w}, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		conn.Close()
		return
	}
	ws.SetReadLimit(maxMessage)
	wc := wsconn.New(ws, wsconn.Addr(r.Host), wsconn.Addr(r.RemoteAddr))
	defer credConns.addUse(cliPrincipal(c), func(reason error) { wc.Abort(reason) })()
	var up, down atomic.Uint64
	err = pipe.Join(wc, conn, &up, &down)
	s.log.Debug("cli raw tunnel closed", "session", c.ID, "target", net.JoinHostPort(ip, strconv.Itoa(port)), "up", up.Load(), "down", down.Load(), "err", err)
}

// parseCLITarget checks the {ip}/{port} of a raw-tunnel path: an IPv4
// address and a port, as a plan lists them.
func parseCLITarget(ip, port string) (string, int, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is4() {
		return "", 0, fmt.Errorf("%w: %q is not an IPv4 address", errBadRequest, ip)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return "", 0, fmt.Errorf("%w: %q is not a port", errBadRequest, port)
	}
	return a.String(), p, nil
}

// cliMuxConn is one CLI's multiplexed connection: an smux session (the
// CLI is the client) over the byte stream of one WebSocket, or over the
// TLS connection itself on the raw transport (cli_raw.go).
type cliMuxConn struct {
	// closeConn closes the connection under sess, telling the CLI why
	// where the transport can (a WebSocket close frame).
	closeConn func(code websocket.StatusCode, reason string)
	sess      *smux.Session
	once      sync.Once
	known     sync.Map // "ip:port" → handle, see dialCLI

	mu       sync.Mutex
	cached   store.CLISession // the session as last read or slid
	cachedAt time.Time        // when it was read from the store
}

// cliSessionFresh is how long a mux reuses its session row between stream
// opens instead of reading it again: a store read per open is a large
// share of an open's CPU (docs/perf.md has the figure), and nothing is
// lost by skipping it: a revocation through this relay cuts the
// whole mux at once (credConns), expiry is checked against the cached
// times on every open, and sliding still writes through useCLISession.
// A revocation through another relay on a shared database cuts the mux
// too, when the store's change feed brings it (relay/changes.go); only a
// write to the database that sends no change waits for the next read, at
// most this long.
const cliSessionFresh = time.Second

// session returns the mux's CLI session, checked live and slid as
// useCLISession does, from the store at most every cliSessionFresh.
func (m *cliMuxConn) session(ctx context.Context, s *cliEdge, id string) (store.CLISession, error) {
	m.mu.Lock()
	c, at := m.cached, m.cachedAt
	m.mu.Unlock()
	fromCache := !at.IsZero() && time.Since(at) < cliSessionFresh
	if !fromCache {
		var err error
		if c, err = s.store.GetCLISession(ctx, id); err != nil {
			return c, err
		}
		at = time.Now()
	}
	c, err := s.useCLISession(ctx, c)
	var ae cliAuthError
	if fromCache && errors.As(err, &ae) {
		// Refuse only on what the store says: another path (a plan
		// fetch, a raw tunnel) may have slid the session since.
		if c, err = s.store.GetCLISession(ctx, id); err != nil {
			return c, err
		}
		at = time.Now()
		c, err = s.useCLISession(ctx, c)
	}
	if err == nil {
		m.mu.Lock()
		if !at.Before(m.cachedAt) {
			m.cached, m.cachedAt = c, at
		}
		m.mu.Unlock()
	}
	return c, err
}

// end closes the WebSocket with a status and reason the CLI can read, then
// the session, which ends every stream of it.
func (m *cliMuxConn) end(code websocket.StatusCode, reason string) {
	m.once.Do(func() {
		m.closeConn(code, reason)
		m.sess.Close()
	})
}

// handleCLIMux serves GET /api/cli/mux: one WebSocket per running CLI,
// carrying one smux session. The CLI opens a stream per local connection
// and writes a mux.Header with the plan address (host 127.0.0.X, port); the
// relay answers with a mux status and then pipes the stream to the device,
// so a local connection costs one stream open, not a TLS handshake. The
// session is re-checked (revoked, expired) and slid on every stream open.
func (s *cliEdge) handleCLIMux(w http.ResponseWriter, r *http.Request) {
	c, err := s.cliSession(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !isUpgrade(r) {
		writeJSON(w, http.StatusUpgradeRequired, map[string]string{"error": "this endpoint speaks WebSocket only"})
		return
	}
	ws, err := websocket.Accept(smallHijack{w}, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return
	}
	ws.SetReadLimit(maxMessage)
	sess, err := smux.Server(wsconn.New(ws, wsconn.Addr(r.Host), wsconn.Addr(r.RemoteAddr)), mux.Config())
	if err != nil {
		ws.CloseNow()
		return
	}
	s.serveCLIMux(c, &cliMuxConn{closeConn: func(code websocket.StatusCode, reason string) { ws.Close(code, reason) }, sess: sess}, r.RemoteAddr, "websocket")
}

// serveCLIMux serves the streams of a CLI's mux connection m, whichever
// transport carries it, until it ends: the session is cut with its
// credential (credConns), watched (watchCLIMux) and re-checked on every
// stream open.
func (s *cliEdge) serveCLIMux(c store.CLISession, m *cliMuxConn, remote, transport string) {
	sess := m.sess
	s.live.Add(1)
	defer s.live.Add(-1)
	defer credConns.addUse(cliPrincipal(c), func(reason error) { m.end(websocket.StatusPolicyViolation, reason.Error()) })()
	log := s.log.With("session", c.ID, "remote", remote)
	log.Info("cli mux connected", "transport", transport)

	var wg sync.WaitGroup
	wg.Go(func() { s.watchCLIMux(c.ID, m) })
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			break
		}
		wg.Go(func() { s.serveCLIStream(c.ID, m, st, log, &wg) })
	}
	m.end(websocket.StatusNormalClosure, "")
	wg.Wait()
	log.Info("cli mux closed")
}

// watchCLIMux ends the mux connection when the relay shuts down (hijacked
// connections are not net/http's to close) and when a periodic re-read of
// the session finds it revoked or expired without any stream open.
func (s *cliEdge) watchCLIMux(id string, m *cliMuxConn) {
	t := time.NewTicker(cliRecheck)
	defer t.Stop()
	for {
		select {
		case <-m.sess.CloseChan():
			return
		case <-s.done:
			m.end(websocket.StatusGoingAway, "relay shutting down")
			return
		case <-s.drain:
			endCLIMuxWhenIdle(m, s.done)
			return
		case <-t.C:
			c, err := s.store.GetCLISession(context.Background(), id)
			if err == nil {
				err = cliLive(context.Background(), s.store, c, s.cfg.Now())
			}
			var ae cliAuthError
			if errors.As(err, &ae) {
				m.end(websocket.StatusPolicyViolation, ae.Error())
				return
			}
		}
	}
}

// serveCLIStream answers one stream of a CLI's mux: header, session and
// scope checks, Dial, status; then it joins the two streams with
// pipe.JoinAsync, counted in wg, and returns. Both sides are mux streams,
// so an idle tunnel holds no goroutine in the relay: the store read and
// the dial grow this goroutine's stack (modernc sqlite runs deep), and
// a blocked copy keeps the stack the TLS write path grew
// (docs/perf-peers-changes.md).
func (s *cliEdge) serveCLIStream(id string, m *cliMuxConn, st *smux.Stream, log *slog.Logger, wg *sync.WaitGroup) {
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	h, err := mux.ReadHeader(st)
	if err != nil {
		mux.WriteStatus(st, mux.BadRequest, err.Error())
		st.Close()
		return
	}
	st.SetReadDeadline(time.Time{})
	ctx := context.Background() // Dial bounds its own wait (openTimeout)
	c, err := m.session(ctx, s, id)
	var ae cliAuthError
	if errors.As(err, &ae) {
		mux.WriteStatus(st, mux.NotAllowed, ae.Error())
		st.Close()
		m.end(websocket.StatusPolicyViolation, ae.Error())
		return
	}
	var conn net.Conn
	if err == nil {
		conn, err = s.dialCLI(ctx, c, h.Host, int(h.Port), h.Flags&mux.FlagDedicated, &m.known)
	}
	if err != nil {
		code, reason := cliStatus(err)
		if code == mux.AgentError && reason == "internal error" {
			log.Error("cli stream", "target", net.JoinHostPort(h.Host, strconv.Itoa(int(h.Port))), "err", err)
		}
		mux.WriteStatus(st, code, reason)
		st.Close()
		return
	}
	if err := mux.WriteStatus(st, mux.OK, ""); err != nil {
		conn.Close()
		st.Close()
		return
	}
	var up, down atomic.Uint64
	wg.Add(1)
	pipe.JoinAsync(mux.NewStream(st), conn, &up, &down, func(err error) {
		log.Debug("cli stream closed", "target", net.JoinHostPort(h.Host, strconv.Itoa(int(h.Port))), "up", up.Load(), "down", down.Load(), "err", err)
		wg.Done()
	})
}

// cliStatus maps an error of dialCLI to the mux status the CLI sees; the
// codes are those an agent answers with, so one client decodes both.
func cliStatus(err error) (mux.Code, string) {
	var se scopeError
	switch {
	case errors.As(err, &se):
		return mux.NotAllowed, se.Error()
	case errors.Is(err, ErrAgentOffline):
		return mux.AgentError, ErrAgentOffline.Error()
	case errors.Is(err, ErrNotAllowed):
		return mux.NotAllowed, err.Error()
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return mux.TimedOut, err.Error()
	case errors.Is(err, ErrUnreachable):
		// handshake folds the agent's Refused code into this text.
		if strings.HasSuffix(err.Error(), "connection refused") {
			return mux.Refused, err.Error()
		}
		return mux.Unreachable, err.Error()
	}
	return mux.AgentError, "internal error"
}

// cliPrincipal is who a CLI session acts as: its tenant and user, its id
// as the credential its tunnels are cut by.
func cliPrincipal(c store.CLISession) Principal {
	return Principal{TenantID: c.TenantID, UserID: c.UserID, Actor: "cli:" + c.ID, Cred: c.ID}
}
