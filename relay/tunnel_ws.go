package relay

import (
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/coder/websocket"

	"github.com/nanodems/connector/internal/pipe"
	"github.com/nanodems/connector/internal/wsconn"
	"github.com/nanodems/connector/mux"
	"github.com/nanodems/connector/relay/store"
)

// wsTunnels serves GET /api/tunnel/{handle}: a raw tunnel to a device
// port over one WebSocket, for programs (an API credential, an OpCon
// license, an ops_ CLI session) and signed-in browsers. It depends on the
// authenticator, the Dialer it opens the tunnel through, the resolver
// (to audit the admin key's use and to check a CLI session's sites) and
// the CLI edge (which checks ops_ sessions).
type wsTunnels struct {
	base
	auth   *authenticator
	dialer Dialer
	routes resolver
	cli    *cliEdge
}

// maxMessage bounds one WebSocket message from a client. Clients send at
// most a copy buffer (64 KiB) per message; 1 MiB leaves room for others
// while a peer cannot make the relay buffer more.
const maxMessage = 1 << 20

// handleTunnel serves GET /api/tunnel/{handle}: one raw tunnel per
// WebSocket, bytes in binary messages, an empty message for half-close
// (internal/wsconn). Every refusal is answered before the upgrade, with
// the HTTP status and a one-line reason.
func (s *wsTunnels) handleTunnel(w http.ResponseWriter, r *http.Request) {
	who, err := s.caller(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p := who.p
	if !isUpgrade(r) {
		// Refuse before dialing: a plain GET must not open a device port.
		writeJSON(w, http.StatusUpgradeRequired, map[string]string{"error": "this endpoint speaks WebSocket only"})
		return
	}
	// A signed-in browser may open tunnels too; a cross-origin upgrade is
	// refused (crossOrigin) before the device is dialled, so another site
	// can neither ride the cookie nor make the agent open a connection.
	// A license is no ambient credential (a page sends it only if it holds
	// it), and an OpCon's page is of another origin by design.
	if who.lic == nil {
		if err := crossOrigin(r); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	h := r.PathValue("handle")
	if who.sites != nil {
		if err := s.inSessionSites(r, p, h, who.sites); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	o := DialOptions{Path: PathWS}
	if r.URL.Query().Get("dedicated") == "1" {
		// A bulk transfer asks for its own connection from the start.
		o.Flags |= mux.FlagDedicated
	}
	conn, err := s.dialer.Dial(r.Context(), p, h, o)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if p.Admin {
		// The admin key crosses tenants; every such tunnel is on record.
		route, _ := s.routes.resolve(r.Context(), h)
		s.audit(store.AuditEvent{TenantID: route.TenantID, Actor: p.Actor, Action: "tunnel.admin_open", Target: h, Detail: r.RemoteAddr})
	}
	opts := &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled}
	if who.lic != nil {
		// The console's user id is on record with the tunnel it opened,
		// and nowhere else.
		s.audit(store.AuditEvent{TenantID: p.TenantID, Actor: p.Actor, Action: "tunnel.license_open", Target: h,
			Detail: fmt.Sprintf("license %s user %q from %s", p.Cred, who.lic.UserID, r.RemoteAddr)})
		// The console's page is of another origin (its own), which the
		// WebSocket library refuses unless told; handleTunnel has made
		// the origin decision above.
		opts.OriginPatterns = []string{"*"}
		if who.lic.Subprotocol != "" {
			// RFC 6455: the server answers with one subprotocol the
			// client offered; a browser drops the connection otherwise.
			opts.Subprotocols = []string{who.lic.Subprotocol}
		}
	}
	ws, err := websocket.Accept(smallHijack{w}, r, opts)
	if err != nil {
		conn.Close()
		return // Accept has answered the client
	}
	ws.SetReadLimit(maxMessage)
	c := wsconn.New(ws, wsconn.Addr(r.Host), wsconn.Addr(r.RemoteAddr))
	// The bytes flow on a fresh goroutine and this handler returns: its
	// goroutine's stack, grown by the TLS handshake and the HTTP parsing,
	// and the request it holds (headers, contexts) are freed while the
	// tunnel lives. Per idle tunnel that took the relay's Go heap+stacks
	// from 53.8 to 38.7 KiB (K=1000, docs/perf-bench.md).
	go func() {
		// Revoking the credential (token, browser session) cuts the tunnel.
		defer credConns.addUse(p, func(reason error) { c.Abort(reason) })()
		var up, down atomic.Uint64
		err := pipe.Join(c, conn, &up, &down)
		s.log.Debug("tunnel closed", "handle", h, "up", up.Load(), "down", down.Load(), "err", err)
	}()
}
