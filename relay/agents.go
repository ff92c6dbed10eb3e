package relay

import (
	"context"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/xtaci/smux"

	"github.com/nanodems/connector/internal/acceptloop"
	"github.com/nanodems/connector/internal/coalesce"
	"github.com/nanodems/connector/mux"
	"github.com/nanodems/connector/relay/pki"
	"github.com/nanodems/connector/relay/store"
)

// heartbeatSeconds is the interval agents are told to report at.
const heartbeatSeconds = 5

// serveAgents accepts agent connections until the listener closes. A
// failed accept (out of file descriptors, most likely) is waited out: the
// listener is how every agent comes back, and only a restart would bring
// it back if it stopped.
func (s *Server) serveAgents(ln net.Listener) {
	acceptloop.Serve(context.Background(), ln, s.log.With("listener", "agents"), func(c net.Conn) {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveAgent(c)
		}()
	})
}

// serveAgent runs one agent connection: mTLS handshake, hello and identity
// checks, registration, then the control loop until the session ends.
func (s *Server) serveAgent(raw net.Conn) {
	log := s.log.With("remote", raw.RemoteAddr().String())
	tc := coalesce.Server(raw, s.agentTLS)
	raw.SetDeadline(time.Now().Add(15 * time.Second))
	if err := tc.Handshake(); err != nil {
		log.Info("agent TLS handshake failed", "err", err)
		raw.Close()
		return
	}
	cert := tc.ConnectionState().PeerCertificates[0]
	var pre [1]byte
	if _, err := io.ReadFull(tc, pre[:]); err != nil {
		raw.Close()
		return
	}
	switch pre[0] {
	case mux.PreambleSession:
		s.serveSession(tc, raw, cert, log)
	case mux.PreambleDedicated, mux.PreambleDedicatedAcked:
		if !s.attachDedicated(tc, cert, pre[0] == mux.PreambleDedicatedAcked, log) {
			raw.Close()
		}
	default:
		log.Info("agent connection with unknown preamble", "byte", pre[0])
		raw.Close()
	}
}

// attachDedicated takes a dedicated connection for one tunnel: the agent
// must be the one whose session holds the tunnel, and pass the same
// identity checks as a hello. With ack, the agent waits for
// mux.DedicatedAccepted before it moves the tunnel, so every refusal
// above leaves the tunnel on the shared session. It reports whether the
// connection now belongs to the tunnel.
func (s *Server) attachDedicated(tc *coalesce.Conn, cert *x509.Certificate, ack bool, log *slog.Logger) bool {
	cn := cert.Subject.CommonName
	var id [4]byte
	if _, err := io.ReadFull(tc, id[:]); err != nil {
		return false
	}
	if _, err := s.checkAgent(cn, pki.Serial(cert.SerialNumber), mux.Hello{AgentID: cn}); err != nil {
		log.Warn("dedicated connection refused", "cn", cn, "err", err)
		return false
	}
	a := s.agents.get(cn)
	if a == nil {
		return false
	}
	t, ok := a.waitTunnel(binary.BigEndian.Uint32(id[:]), 5*time.Second)
	if !ok {
		log.Info("dedicated connection for a tunnel that is gone", "agent", cn)
		return false
	}
	if ack {
		// Before Attach: the acceptance is the first byte the agent
		// reads here, ahead of the tunnel's frames.
		if _, err := tc.Write([]byte{mux.DedicatedAccepted}); err != nil {
			log.Info("accepting dedicated connection", "agent", cn, "err", err)
			return false
		}
	}
	tc.SetDeadline(time.Time{})
	// Stored before Attach: once attached, the session's end may cut the
	// tunnel at any moment, and must find the socket to close.
	sock := tc.NetConn()
	t.socket.Store(&sock)
	if err := t.Attach(tc); err != nil {
		return false
	}
	a.dedicated.Add(1)
	return true
}

// serveSession runs the shared session of an agent.
func (s *Server) serveSession(tc *coalesce.Conn, raw net.Conn, cert *x509.Certificate, log *slog.Logger) {
	defer raw.Close()
	cn := cert.Subject.CommonName

	sess, err := smux.Server(tc, mux.Config())
	if err != nil {
		return
	}
	defer sess.Close()
	ctrl, err := sess.AcceptStream()
	if err != nil {
		log.Info("agent opened no control stream", "cn", cn, "err", err)
		return
	}
	t, body, err := mux.ReadMessage(ctrl)
	if err != nil || t != mux.MsgHello {
		log.Info("agent sent no hello", "cn", cn, "type", t, "err", err)
		return
	}
	var hello mux.Hello
	if err := mux.Decode(body, &hello); err != nil {
		log.Info("bad hello", "cn", cn, "err", err)
		return
	}
	agent, err := s.checkAgent(cn, pki.Serial(cert.SerialNumber), hello)
	if err != nil {
		var ref *refusal
		if errors.As(err, &ref) {
			mux.WriteMessage(ctrl, mux.MsgHelloAck, mux.HelloAck{Reason: ref.reason, Permanent: ref.permanent})
			log.Warn("agent refused", "cn", cn, "reason", ref.reason)
		} else {
			mux.WriteMessage(ctrl, mux.MsgHelloAck, mux.HelloAck{Reason: "relay error, retry later"})
			log.Error("checking agent", "cn", cn, "err", err)
		}
		return
	}
	raw.SetDeadline(time.Time{})

	a := &agentSession{id: agent.ID, siteID: agent.SiteID, remote: raw.RemoteAddr().String(), version: hello.Version, connectedAt: s.cfg.Now(), sess: sess, ctrl: ctrl}
	a.allowlistHeld.Store(hello.AllowlistVersion)
	a.features = hello.Features
	// The lease before the ack: an agent that is told it is connected can
	// be found by every relay of the fleet at once.
	s.putLease(a)
	if err := a.send(mux.MsgHelloAck, mux.HelloAck{OK: true, Relay: s.cfg.NodeName, HeartbeatSeconds: heartbeatSeconds}); err != nil {
		s.dropLease(a)
		return
	}
	if old := s.agents.add(a); old != nil {
		old.sess.Close()
	}
	defer s.dropLease(a) // after remove: runs last
	defer s.statsRec.End(context.Background(), a.id)
	defer s.agents.remove(a)
	// Runs first: however the session ends, its tunnels end with it, those
	// on dedicated connections included.
	defer func() {
		if n := a.closeTunnels(); n > 0 {
			s.log.Info("agent session ended; its tunnels were closed", "agent", a.id, "site", a.siteID, "tunnels", n)
		}
	}()
	// A revoke that raced with this hello must still win.
	if cur, err := s.store.GetAgent(context.Background(), a.id); err != nil || cur.RevokedAt != nil {
		return
	}
	log = log.With("agent", a.id, "site", a.siteID)
	log.Info("agent connected", "version", hello.Version, "allowlist_version", hello.AllowlistVersion)
	s.audit(store.AuditEvent{TenantID: s.tenantOfSite(a.siteID), Actor: "agent:" + a.id, Action: "agent.connect", Target: a.id, Detail: a.remote})
	if err := s.pushAllowlistTo(context.Background(), a); err != nil {
		log.Warn("initial allowlist push", "err", err)
	}
	err = s.readControl(a)
	s.endAgentRuns(a) // lanruns.go
	log.Info("agent disconnected", "err", err)
}

// refusal is a hello the relay refuses; permanent ones tell the agent to
// stop retrying.
type refusal struct {
	reason    string
	permanent bool
}

func (r *refusal) Error() string { return r.reason }

// checkAgent admits an agent only if its certificate CN is a registered,
// unrevoked agent, the certificate is the one issued to it, and the hello
// names the same agent. Unknown CNs are never grafted into a site.
func (s *Server) checkAgent(cn, serial string, hello mux.Hello) (store.Agent, error) {
	ctx := context.Background()
	agent, err := s.store.GetAgent(ctx, cn)
	if errors.Is(err, store.ErrNotFound) {
		s.audit(store.AuditEvent{Actor: "agent:" + cn, Action: "agent.reject_unregistered_cn", Target: cn, Detail: "certificate CN is not a registered agent"})
		return agent, &refusal{reason: "unknown agent CN " + cn + "; re-enroll this agent", permanent: true}
	}
	if err != nil {
		return agent, err
	}
	tenant := s.tenantOfSite(agent.SiteID)
	switch {
	case agent.RevokedAt != nil:
		s.audit(store.AuditEvent{TenantID: tenant, Actor: "agent:" + cn, Action: "agent.reject_revoked", Target: cn})
		return agent, &refusal{reason: "agent " + cn + " is revoked; re-enroll with a fresh token", permanent: true}
	case agent.CertSerial != serial:
		s.audit(store.AuditEvent{TenantID: tenant, Actor: "agent:" + cn, Action: "agent.reject_certificate", Target: cn, Detail: "serial " + serial + " is not the one issued"})
		return agent, &refusal{reason: "certificate is not the one issued to agent " + cn, permanent: true}
	case hello.AgentID != cn:
		return agent, &refusal{reason: fmt.Sprintf("hello names agent %q but the certificate is %q", hello.AgentID, cn), permanent: true}
	}
	return agent, nil
}

// readControl handles heartbeats and allowlist acks until the control
// stream ends. A dead control stream ends the whole session.
func (s *Server) readControl(a *agentSession) error {
	for {
		t, body, err := mux.ReadMessage(a.ctrl)
		if err != nil {
			return err
		}
		switch t {
		case mux.MsgHeartbeat:
			var hb mux.Heartbeat
			if err := mux.Decode(body, &hb); err != nil {
				return err
			}
			now := s.cfg.Now()
			a.heartbeat.Store(&heartbeat{Heartbeat: hb, At: now})
			a.today.add(now, hb.BytesIn+hb.BytesOut)
			s.putLease(a)
			s.statsRec.Record(context.Background(), a.id, now, hb.Stats) // relay/rollup
		case mux.MsgAllowlistAck:
			var ack mux.AllowlistAck
			if err := mux.Decode(body, &ack); err != nil {
				return err
			}
			a.allowlistHeld.Store(ack.Held)
			if !ack.Accepted {
				s.log.Warn("agent refused allowlist push", "agent", a.id, "pushed", ack.Version, "held", ack.Held, "reason", ack.Reason)
				s.audit(store.AuditEvent{TenantID: s.tenantOfSite(a.siteID), Actor: "agent:" + a.id, Action: "allowlist.refused", Target: a.id, Detail: ack.Reason})
			}
		case mux.MsgRunResult, mux.MsgRunDone:
			if err := s.decodeRun(a, t, body); err != nil { // lanruns.go
				return err
			}
		default:
			return fmt.Errorf("unexpected control message type %d", t)
		}
	}
}

// kick closes the session of an agent, if connected here, and every tunnel
// of it; it reports whether there was a session and how many tunnels it
// had.
func (s *Server) kick(agentID string) (bool, int) {
	if a := s.agents.get(agentID); a != nil {
		a.sess.Close()
		return true, a.closeTunnels()
	}
	return false, 0
}
