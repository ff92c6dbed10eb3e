package store

import (
	"context"
	"time"
)

// Lease says that a relay holds an agent's session: the relay named
// RelayNode, whose peer listener (BridgeTunnel) is at Endpoint, until
// ExpiresAt. The holder renews it on every heartbeat of the agent and
// deletes it when the session ends; a relay that dies leaves it to expire.
type Lease struct {
	AgentID   string
	SiteID    string
	RelayNode string
	Endpoint  string // host:port of the holder's peer listener
	Active    int64  // tunnels open through the agent at the last renewal
	ExpiresAt time.Time
}

// The SQL below is written in the dialect SQLite and PostgreSQL share
// (INSERT … ON CONFLICT … DO UPDATE, BIGINT times), with ? placeholders.

// PutLease writes (or renews) the lease of l.AgentID, whoever held it.
func (s *sqlStore) PutLease(ctx context.Context, l Lease) error {
	_, err := s.exec(ctx, `INSERT INTO agent_leases (agent_id, site_id, relay_node, endpoint, active, expires_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (agent_id) DO UPDATE SET site_id = excluded.site_id, relay_node = excluded.relay_node,
			endpoint = excluded.endpoint, active = excluded.active, expires_at = excluded.expires_at`,
		l.AgentID, l.SiteID, l.RelayNode, l.Endpoint, l.Active, ts(l.ExpiresAt))
	return wrapf(err, "put lease of agent %s", l.AgentID)
}

// DeleteLease removes the agent's lease if relayNode still holds it: the
// agent may already be back on another relay, whose lease must stay.
func (s *sqlStore) DeleteLease(ctx context.Context, agentID, relayNode string) error {
	_, err := s.exec(ctx, `DELETE FROM agent_leases WHERE agent_id = ? AND relay_node = ?`, agentID, relayNode)
	return wrapf(err, "delete lease of agent %s", agentID)
}

// LookupLease returns the agent's lease if it is live at now; ErrNotFound
// if there is none or it has expired.
func (s *sqlStore) LookupLease(ctx context.Context, agentID string, now time.Time) (Lease, error) {
	l, err := scanLease(s.db.QueryRowContext(ctx, `SELECT agent_id, site_id, relay_node, endpoint, active, expires_at
		FROM agent_leases WHERE agent_id = ? AND expires_at > ?`, agentID, ts(now)))
	return l, wrapf(err, "lookup lease of agent %s", agentID)
}

// ListSiteLeases returns the live leases of the site's agents, by agent id.
func (s *sqlStore) ListSiteLeases(ctx context.Context, siteID string, now time.Time) ([]Lease, error) {
	out, err := queryAll(ctx, s.db, scanLease, `SELECT agent_id, site_id, relay_node, endpoint, active, expires_at
		FROM agent_leases WHERE site_id = ? AND expires_at > ? ORDER BY agent_id`, siteID, ts(now))
	return out, wrapf(err, "list leases of site %s", siteID)
}

// ReapLeases deletes the leases expired at now and returns how many.
func (s *sqlStore) ReapLeases(ctx context.Context, now time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM agent_leases WHERE expires_at <= ?`, ts(now))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), wrapf(err, "reap leases")
}

func scanLease(r rowScanner) (Lease, error) {
	var l Lease
	var exp int64
	err := r.Scan(&l.AgentID, &l.SiteID, &l.RelayNode, &l.Endpoint, &l.Active, &exp)
	l.ExpiresAt = fromTS(exp)
	return l, err
}
