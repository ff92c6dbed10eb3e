package relay

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/nanodems/connector/relay/store"
)

// readyPingTimeout bounds the database check of /healthz/ready: a
// database that takes longer is as good as down for the agents and
// operators a load balancer would send here.
const readyPingTimeout = 2 * time.Second

// handleLive is GET /healthz/live: the process is up and serving HTTP.
// It checks nothing else, so that an orchestrator restarts the relay only
// when it is wedged, never because the database is away.
func (s *Server) handleLive(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "live", "node": s.cfg.NodeName})
}

// handleReady is GET /healthz/ready: 200 when the relay should get new
// agents and operators (its listeners up, its database answering within
// readyPingTimeout, not draining), else 503 with the reason. A load
// balancer takes the relay out of rotation on the 503.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if reason := s.notReady(r.Context()); reason != "" {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": reason, "node": s.cfg.NodeName})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "node": s.cfg.NodeName})
}

// notReady says why the relay is not ready, or "" when it is.
func (s *Server) notReady(ctx context.Context) string {
	if s.draining.Load() {
		return "draining: this relay is shutting down and takes no new agents or operators"
	}
	if !s.listening.Load() {
		return "the agent and API listeners are not up"
	}
	ctx, cancel := context.WithTimeout(ctx, readyPingTimeout)
	defer cancel()
	if err := pingStore(ctx, s.store); err != nil {
		return "database: " + err.Error()
	}
	return ""
}

// pinger is a store that can check its connection itself.
type pinger interface {
	Ping(ctx context.Context) error
}

// pingStore checks that the database answers before ctx ends: with the
// store's own Ping when it has one, else with a read of a setting every
// relay has (the admin key hash). The wait is bounded even for a store
// that does not heed ctx; its call then ends on its own.
func pingStore(ctx context.Context, st store.Store) error {
	done := make(chan error, 1)
	go func() {
		if p, ok := st.(pinger); ok {
			done <- p.Ping(ctx)
			return
		}
		_, err := st.GetSetting(ctx, "admin_key_sha256")
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("no answer within %v", readyPingTimeout)
	}
}
