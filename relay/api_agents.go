package relay

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/nanodems/connector/relay/store"
)

func (s *managementAPI) listAgents(w http.ResponseWriter, r *http.Request, p Principal) error {
	site, err := s.siteFor(r, p, r.PathValue("siteId"))
	if err != nil {
		return err
	}
	agents, err := s.store.ListAgents(r.Context(), site.ID)
	if err != nil {
		return err
	}
	leases, err := s.store.ListSiteLeases(r.Context(), site.ID, s.cfg.Now())
	if err != nil {
		return err
	}
	held := s.heldElsewhere(leases)
	out := make([]map[string]any, 0, len(agents))
	for _, a := range agents {
		out = append(out, s.agentJSON(a, held))
	}
	if err := s.addTraffic(r, out); err != nil { // relay/api_stats.go
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// heldElsewhere are the fresh leases of other relays, by agent id: the
// agents this relay does not hold but another relay of the fleet does.
// A lease stays live for leaseTTL so that routing and the reaper tolerate
// a slow database, but an agent whose lease was not renewed for
// leaseFresh (three missed heartbeats) is shown offline: an agent that
// died with its relay would otherwise show online for up to 90 s.
func (s *managementAPI) heldElsewhere(leases []store.Lease) map[string]store.Lease {
	held := make(map[string]store.Lease, len(leases))
	stale := s.cfg.Now().Add(-leaseFresh)
	for _, l := range leases {
		if l.RelayNode != s.cfg.NodeName && l.ExpiresAt.Add(-leaseTTL).After(stale) {
			held[l.AgentID] = l
		}
	}
	return held
}

// agentJSON is an agent as the API shows it: its record, what this relay
// knows live of its session when it is connected here, and otherwise
// which relay holds it (held: heldElsewhere, read once per list).
func (s *managementAPI) agentJSON(a store.Agent, held map[string]store.Lease) map[string]any {
	j := map[string]any{"id": a.ID, "site_id": a.SiteID, "created_at": a.CreatedAt, "revoked": a.RevokedAt != nil, "online": false}
	if a.RevokedAt != nil {
		j["revoked_at"] = a.RevokedAt
	}
	if live := s.agents.get(a.ID); live != nil {
		j["online"] = true
		j["relay"] = s.cfg.NodeName
		j["version"] = live.version
		j["remote_addr"] = live.remote
		j["connected_at"] = live.connectedAt
		j["active_streams"] = live.active.Load()
		j["dedicated_total"] = live.dedicated.Load()
		j["allowlist_version"] = live.allowlistHeld.Load()
		j["bytes_today"] = live.today.get(s.cfg.Now())
		if hb := live.heartbeat.Load(); hb != nil {
			j["last_heartbeat"] = hb.At
			j["bytes_in"] = hb.BytesIn
			j["bytes_out"] = hb.BytesOut
			j["agent_active_streams"] = hb.ActiveStreams
			// Camera datagrams its UDP relays lost to a full socket
			// buffer since it started: the gaps every viewer of a
			// UDP-only camera sees.
			j["udp_drops"] = hb.UDPDrops
			if hb.Counting != "" {
				j["counting"] = hb.Counting
			}
		}
	} else if l, ok := held[a.ID]; ok && a.RevokedAt == nil {
		// Held by another relay of the fleet: what its lease says, as of
		// the agent's last heartbeat there.
		j["online"] = true
		j["relay"] = l.RelayNode
		j["active_streams"] = l.Active
	}
	return j
}

// revokeAgent marks the agent revoked and closes its session and all its
// tunnels at once; its certificate is refused on every later hello.
func (s *managementAPI) revokeAgent(w http.ResponseWriter, r *http.Request, p Principal) error {
	id := r.PathValue("agentId")
	a, err := s.store.GetAgent(r.Context(), id)
	if err != nil {
		return lookup(err, "agent "+id)
	}
	site, err := s.siteFor(r, p, a.SiteID)
	if err != nil {
		return err
	}
	if err := s.store.RevokeAgent(r.Context(), id, s.cfg.Now()); err != nil {
		return err
	}
	kicked, tunnels := s.agentSide.kick(id)
	s.audit(store.AuditEvent{TenantID: site.TenantID, Actor: p.Actor, Action: "agent.revoke", Target: id, Detail: fmt.Sprintf("session closed: %v, tunnels closed: %d", kicked, tunnels)})
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "revoked": true, "disconnected": kicked})
	return nil
}

func (s *managementAPI) listAudit(w http.ResponseWriter, r *http.Request, p Principal) error {
	q := r.URL.Query()
	f := store.AuditFilter{TenantID: q.Get("tenant_id"), Action: q.Get("action")}
	if !p.Admin {
		f.TenantID = p.TenantID
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return fmt.Errorf("%w: limit must be 1 to 1000", errBadRequest)
		}
		f.Limit = n
	}
	if err := auditWindow(q, &f); err != nil {
		return err
	}
	evs, err := s.store.ListAudit(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(evs))
	for _, e := range evs {
		out = append(out, map[string]any{"id": e.ID, "at": e.At, "tenant_id": e.TenantID, "actor": e.Actor, "action": e.Action, "target": e.Target, "detail": e.Detail})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
