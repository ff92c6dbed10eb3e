package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

func (s *sqlStore) CreateSite(ctx context.Context, site Site) error {
	_, err := s.exec(ctx, `INSERT INTO sites (id, tenant_id, name, allowlist_version, allow_loopback, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`,
		site.ID, site.TenantID, site.Name, site.AllowlistVersion, site.AllowLoopback, ts(site.CreatedAt))
	return wrapf(err, "create site %s", site.ID)
}

func (s *sqlStore) GetSite(ctx context.Context, id string) (Site, error) {
	var site Site
	var created int64
	err := s.db.QueryRowContext(ctx, `SELECT id, tenant_id, name, allowlist_version, allow_loopback, created_at
		FROM sites WHERE id = ?`, id).
		Scan(&site.ID, &site.TenantID, &site.Name, &site.AllowlistVersion, &site.AllowLoopback, &created)
	if err != nil {
		return Site{}, wrapf(err, "get site %s", id)
	}
	site.CreatedAt = fromTS(created)
	return site, nil
}

// UpdateSite rewrites the site's name and AllowLoopback; its tenant,
// allowlist version and creation time are kept. An unknown site is
// ErrNotFound.
func (s *sqlStore) UpdateSite(ctx context.Context, site Site) error {
	err := s.execOneChange(ctx, Change{Kind: ChangeSite, ID: site.ID, TenantID: site.TenantID}, `UPDATE sites SET name = ?, allow_loopback = ? WHERE id = ?`,
		site.Name, site.AllowLoopback, site.ID)
	return wrapf(err, "update site %s", site.ID)
}

// bumpSite increments the site's allowlist version inside tx and returns
// the site's tenant and the new version.
func bumpSite(ctx context.Context, tx *txn, siteID string) (tenantID string, version int64, err error) {
	err = tx.QueryRowContext(ctx, `UPDATE sites SET allowlist_version = allowlist_version + 1
		WHERE id = ? RETURNING tenant_id, allowlist_version`, siteID).Scan(&tenantID, &version)
	if err == sql.ErrNoRows {
		err = fmt.Errorf("site %s: %w", siteID, ErrNotFound)
	}
	return tenantID, version, err
}

func (s *sqlStore) CreateEnrollmentToken(ctx context.Context, t EnrollmentToken) error {
	_, err := s.exec(ctx, `INSERT INTO enrollment_tokens (hash, site_id, expires_at, used_at, created_at)
		VALUES (?, ?, ?, ?, ?)`,
		t.Hash, t.SiteID, ts(t.ExpiresAt), nullTS(t.UsedAt), ts(t.CreatedAt))
	return wrapf(err, "create enrollment token for site %s", t.SiteID)
}

// UseEnrollmentToken checks and spends the token in one write transaction;
// writes are serialized, so of two concurrent uses exactly one succeeds.
func (s *sqlStore) UseEnrollmentToken(ctx context.Context, hash []byte, now time.Time) (EnrollmentToken, error) {
	var t EnrollmentToken
	err := s.write(ctx, func(tx *txn) error {
		var expires, created int64
		var used sql.Null[int64]
		err := tx.QueryRowContext(ctx, `SELECT hash, site_id, expires_at, used_at, created_at
			FROM enrollment_tokens WHERE hash = ?`+tx.d.forUpdate, hash).
			Scan(&t.Hash, &t.SiteID, &expires, &used, &created)
		if err != nil {
			return err
		}
		t.ExpiresAt, t.UsedAt, t.CreatedAt = fromTS(expires), ptrTS(used), fromTS(created)
		switch {
		case t.UsedAt != nil:
			return ErrUsed
		case !now.Before(t.ExpiresAt):
			return ErrExpired
		}
		at := roundTS(now)
		t.UsedAt = &at
		_, err = tx.ExecContext(ctx, `UPDATE enrollment_tokens SET used_at = ? WHERE hash = ?`, ts(at), hash)
		return err
	})
	if err != nil {
		return EnrollmentToken{}, wrapf(err, "use enrollment token")
	}
	return t, nil
}

func (s *sqlStore) CreateAgent(ctx context.Context, a Agent) error {
	_, err := s.exec(ctx, `INSERT INTO agents (id, site_id, cert_serial, revoked_at, created_at)
		VALUES (?, ?, ?, ?, ?)`,
		a.ID, a.SiteID, a.CertSerial, nullTS(a.RevokedAt), ts(a.CreatedAt))
	return wrapf(err, "create agent %s", a.ID)
}

const agentCols = `id, site_id, cert_serial, revoked_at, created_at`

func scanAgent(r rowScanner) (Agent, error) {
	var a Agent
	var revoked sql.Null[int64]
	var created int64
	if err := r.Scan(&a.ID, &a.SiteID, &a.CertSerial, &revoked, &created); err != nil {
		return Agent{}, err
	}
	a.RevokedAt, a.CreatedAt = ptrTS(revoked), fromTS(created)
	return a, nil
}

// GetAgent returns the agent whether or not it is revoked.
func (s *sqlStore) GetAgent(ctx context.Context, id string) (Agent, error) {
	a, err := scanAgent(s.db.QueryRowContext(ctx, `SELECT `+agentCols+` FROM agents WHERE id = ?`, id))
	return a, wrapf(err, "get agent %s", id)
}

// ListAgents returns the site's agents, revoked ones included, oldest first.
func (s *sqlStore) ListAgents(ctx context.Context, siteID string) ([]Agent, error) {
	as, err := queryAll(ctx, s.db, scanAgent,
		`SELECT `+agentCols+` FROM agents WHERE site_id = ? ORDER BY created_at, id`, siteID)
	return as, wrapf(err, "list agents of site %s", siteID)
}

// RevokeAgent marks the agent revoked. Revoking it again keeps the first
// time.
func (s *sqlStore) RevokeAgent(ctx context.Context, id string, at time.Time) error {
	err := s.execOneChange(ctx, Change{Kind: ChangeAgentRevoked, ID: id}, `UPDATE agents SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, ts(at), id)
	return wrapf(err, "revoke agent %s", id)
}
