package store

import (
	"context"
	"database/sql"
	"time"
)

// RTSPCredential is a per-integration login of the RTSP gateway: a VMS
// keeps rtsp://{ID}:{secret}@relay:9554/{handle}/… and the gateway checks
// it with Digest. Only HA1, the hex of MD5(ID:realm:secret) for the
// gateway's fixed realm, is stored: it is what a Digest check needs, and
// the secret is shown once.
type RTSPCredential struct {
	ID        string // also the Digest user name
	TenantID  string
	SiteID    string // "" for every site of the tenant
	Name      string
	HA1       string
	CreatedBy string // the audit actor who created it
	CreatedAt time.Time
	ExpiresAt *time.Time // nil: no expiry
	RevokedAt *time.Time
}

// CreateRTSPCredential stores c; a duplicate id is ErrConflict, an
// unknown tenant ErrNotFound (SQLite) or a foreign key error.
func (s *sqlStore) CreateRTSPCredential(ctx context.Context, c RTSPCredential) error {
	_, err := s.exec(ctx, `INSERT INTO rtsp_credentials
		(id, tenant_id, site_id, name, ha1, created_by, created_at, expires_at, revoked_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.TenantID, c.SiteID, c.Name, c.HA1, c.CreatedBy, ts(c.CreatedAt), nullTS(c.ExpiresAt), nullTS(c.RevokedAt))
	return wrapf(err, "create rtsp credential %s", c.ID)
}

const rtspCredCols = `id, tenant_id, site_id, name, ha1, created_by, created_at, expires_at, revoked_at`

func scanRTSPCredential(r rowScanner) (RTSPCredential, error) {
	var c RTSPCredential
	var created int64
	var expires, revoked sql.Null[int64]
	if err := r.Scan(&c.ID, &c.TenantID, &c.SiteID, &c.Name, &c.HA1, &c.CreatedBy, &created, &expires, &revoked); err != nil {
		return RTSPCredential{}, err
	}
	c.CreatedAt, c.ExpiresAt, c.RevokedAt = fromTS(created), ptrTS(expires), ptrTS(revoked)
	return c, nil
}

// GetRTSPCredential returns the credential with that id, revoked or
// expired or not; the caller decides.
func (s *sqlStore) GetRTSPCredential(ctx context.Context, id string) (RTSPCredential, error) {
	c, err := scanRTSPCredential(s.db.QueryRowContext(ctx, `SELECT `+rtspCredCols+` FROM rtsp_credentials WHERE id = ?`, id))
	return c, wrapf(err, "get rtsp credential %s", id)
}

// ListRTSPCredentials returns the tenant's credentials that are not
// revoked, oldest first.
func (s *sqlStore) ListRTSPCredentials(ctx context.Context, tenantID string) ([]RTSPCredential, error) {
	cs, err := queryAll(ctx, s.db, scanRTSPCredential, `SELECT `+rtspCredCols+` FROM rtsp_credentials
		WHERE tenant_id = ? AND revoked_at IS NULL ORDER BY created_at, id`, tenantID)
	return cs, wrapf(err, "list rtsp credentials of tenant %s", tenantID)
}

// RevokeRTSPCredential marks the credential revoked, noting
// ChangeRTSPCredentialRevoked so that every relay ends its sessions.
// Revoking it again keeps the first time.
func (s *sqlStore) RevokeRTSPCredential(ctx context.Context, id string, at time.Time) error {
	err := s.execOneChange(ctx, Change{Kind: ChangeRTSPCredentialRevoked, ID: id}, `UPDATE rtsp_credentials SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, ts(at), id)
	return wrapf(err, "revoke rtsp credential %s", id)
}
