package relay

import (
	"context"
	"fmt"
	"time"

	"github.com/coder/websocket"

	"github.com/nanodems/connector/mux"
)

// drainPoll is how often Drain looks at the tunnels still open.
const drainPoll = 50 * time.Millisecond

// Drain takes the relay out of service without cutting what runs through
// it, for a restart or a scale-down (nanodems-relay serve on SIGTERM):
//
//  1. /healthz/ready answers 503, so a load balancer stops sending;
//  2. the agent and API listeners close: no new agent sessions, no new
//     operator connections; requests in flight finish; the RTSP gateway
//     answers new sessions 503 (rtspBackend.Authorize);
//  3. every connected agent is told to move (mux.MsgGoAway): it connects
//     to another relay at once and keeps this session for the tunnels it
//     still carries; CLI mux connections are closed as soon as they carry
//     no stream, and their CLIs reconnect elsewhere;
//  4. it waits until no tunnel is open, or ctx ends.
//
// It returns nil when everything finished, else ctx's error with the
// count of tunnels left. Close, which the caller runs next either way,
// cuts whatever is left.
func (s *Server) Drain(ctx context.Context) error {
	s.drainOnce.Do(func() {
		s.draining.Store(true)
		close(s.drainCh)
	})
	start := time.Now()
	s.log.Info("draining: no new agents or operators", "tunnels", s.openTunnels(), "agents", len(s.agents.all()))
	s.listening.Store(false)
	if s.agentLn != nil {
		s.agentLn.Close()
	}
	httpDone := make(chan struct{})
	go func() {
		defer close(httpDone)
		if s.http != nil {
			s.http.Shutdown(ctx) // closes the API listener, waits for requests in flight
		}
	}()
	for _, a := range s.agents.all() {
		if err := a.send(mux.MsgGoAway, mux.GoAway{Reason: "relay " + s.cfg.NodeName + " is draining"}); err != nil {
			s.log.Info("telling an agent to move", "agent", a.id, "err", err)
		}
	}
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for {
		n := s.openTunnels()
		if n == 0 {
			select {
			case <-httpDone:
				s.log.Info("drained", "took", time.Since(start).Round(time.Millisecond))
				return nil
			default:
			}
		}
		select {
		case <-ctx.Done():
			<-httpDone // Shutdown returns with ctx
			n = s.openTunnels()
			s.log.Warn("drain bound reached; closing what is left", "tunnels", n, "took", time.Since(start).Round(time.Millisecond))
			return fmt.Errorf("relay: drain: %d tunnels still open: %w", n, ctx.Err())
		case <-tick.C:
		}
	}
}

// Draining reports whether Drain has started.
func (s *Server) Draining() bool { return s.draining.Load() }

// openTunnels counts the tunnels open through this relay, every access
// path together.
func (s *Server) openTunnels() int {
	n := 0
	s.live.Range(func(_, _ any) bool {
		n++
		return true
	})
	return n
}

// all lists the connected agents' sessions.
func (r *registry) all() []*agentSession {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*agentSession, 0, len(r.byID))
	for _, a := range r.byID {
		out = append(out, a)
	}
	return out
}

// endCLIMuxWhenIdle closes a CLI's mux connection once it carries no
// stream, while the relay drains: the CLI reconnects, to another relay,
// between two of its connections rather than in the middle of one. It
// returns when the mux has ended.
func endCLIMuxWhenIdle(m *cliMuxConn, done <-chan struct{}) {
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for {
		if m.sess.NumStreams() == 0 {
			m.end(websocket.StatusGoingAway, "relay draining; connect to another")
			return
		}
		select {
		case <-m.sess.CloseChan():
			return
		case <-done:
			m.end(websocket.StatusGoingAway, "relay shutting down")
			return
		case <-tick.C:
		}
	}
}
