package relay

import (
	"context"
	"errors"
	"time"

	"github.com/nanodems/connector/relay/store"
)

// Presence: every relay writes, for each agent it holds, a lease naming
// itself and its peer endpoint (store.Lease), renewed on every heartbeat
// and deleted when the session ends. Any relay reads it to find where an
// agent is, to bridge to it and to fill the agents list's Relay column.

// leaseTTL is how long a lease outlives the agent's last heartbeat: a relay
// that died without deleting its leases stops being named after this.
const leaseTTL = 90 * time.Second

// leaseFresh is how recently a lease must have been renewed for the
// agents list to show its agent online: three heartbeats.
const leaseFresh = 3 * heartbeatSeconds * time.Second

// leaseReapEvery is how often one relay of the fleet (under a TTL lock)
// deletes expired leases. Readers ignore them anyway; this keeps the table
// small.
const leaseReapEvery = time.Minute

// putLease writes a's lease: held here until now+leaseTTL.
func (s *Server) putLease(a *agentSession) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.store.PutLease(ctx, store.Lease{
		AgentID: a.id, SiteID: a.siteID, RelayNode: s.cfg.NodeName, Endpoint: s.peerEndpoint(),
		Active: a.active.Load(), ExpiresAt: s.cfg.Now().Add(leaseTTL),
	})
	if err != nil {
		s.log.Warn("presence lease", "agent", a.id, "err", err)
	}
}

// dropLease deletes a's lease when its session here ended, unless the
// agent is already back on this relay with a new session.
func (s *Server) dropLease(a *agentSession) {
	if s.crashed.Load() || s.agents.get(a.id) != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.store.DeleteLease(ctx, a.id, s.cfg.NodeName); err != nil {
		s.log.Warn("presence lease delete", "agent", a.id, "err", err)
	}
}

// remoteLease is the live lease of agent agentID of site siteID when
// another relay holds it and this relay can bridge to it.
//
// While the database cannot be reached (store.Unavailable), the last
// lease this relay read for the agent stands in until its expiry: the
// relay it names re-checks that it holds the agent before it bridges, so
// a stale one costs a refused bridge, and a handle whose route is cached
// stays reachable from every relay, not only from its agent's (measured
// by e2e/fleet TestFleetDatabaseAway, docs/ha.md).
func (s *Server) remoteLease(ctx context.Context, agentID, siteID string) (store.Lease, bool) {
	if s.bridge == nil || agentID == "" {
		return store.Lease{}, false
	}
	now := s.cfg.Now()
	l, err := s.store.LookupLease(ctx, agentID, now)
	switch {
	case err == nil:
		s.leasesSeen.Store(agentID, l)
	case errors.Is(err, store.ErrNotFound):
		s.leasesSeen.Delete(agentID)
		return l, false
	default:
		s.log.Warn("presence lookup", "agent", agentID, "err", err)
		v, ok := s.leasesSeen.Load(agentID)
		if !ok || !store.Unavailable(err) || !now.Before(v.(store.Lease).ExpiresAt) {
			return l, false
		}
		l = v.(store.Lease)
	}
	return l, l.RelayNode != s.cfg.NodeName && l.SiteID == siteID && l.Endpoint != ""
}

// leastLoaded is the site's online agent with the fewest active tunnels,
// ties by agent id (spec 002 §4), among this relay's sessions and, in a
// fleet, the other relays' leases (whose counts are those of the last
// heartbeat), leaving out the leases of the agents in gone. Exactly one
// of the results is set, or neither when the site has no agent online.
func (s *Server) leastLoaded(ctx context.Context, siteID string, gone map[string]bool) (*agentSession, *store.Lease) {
	local := s.agents.leastLoaded(siteID)
	if s.bridge == nil {
		return local, nil
	}
	leases, err := s.store.ListSiteLeases(ctx, siteID, s.cfg.Now())
	if err != nil {
		s.log.Warn("presence list", "site", siteID, "err", err)
		return local, nil
	}
	var remote *store.Lease
	for i := range leases {
		l := &leases[i]
		if l.RelayNode == s.cfg.NodeName || l.Endpoint == "" {
			continue // this relay's own are in the registry, with live counts
		}
		if gone[l.AgentID] {
			continue
		}
		if remote == nil || l.Active < remote.Active || (l.Active == remote.Active && l.AgentID < remote.AgentID) {
			remote = l
		}
	}
	if remote == nil {
		return local, nil
	}
	if local != nil {
		n := local.active.Load()
		if n < remote.Active || (n == remote.Active && local.id < remote.AgentID) {
			return local, nil
		}
	}
	return nil, remote
}

// reapLeases deletes expired leases; run by one relay at a time.
func (s *Server) reapLeases(ctx context.Context) {
	n, err := s.store.ReapLeases(ctx, s.cfg.Now())
	if err != nil {
		s.log.Warn("reaping leases", "err", err)
	} else if n > 0 {
		s.log.Info("expired presence leases reaped", "count", n)
	}
}
