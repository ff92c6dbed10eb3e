package store

import (
	"context"
	"database/sql"
	"encoding/hex"
	"time"
)

// License is one license GUID of an external operator console (OpCon):
// the capability such a console opens a tenant's tunnels with. Only the
// SHA-256 of the GUID is stored; Hint is its last four characters, so
// people can tell a tenant's licenses apart without seeing them.
type License struct {
	ID        string
	Hash      []byte
	Hint      string
	TenantID  string
	CreatedAt time.Time
	RevokedAt *time.Time
}

const licenseCols = `id, guid_hash, hint, tenant_id, created_at, revoked_at`

func scanLicense(r rowScanner) (License, error) {
	var l License
	var hash string
	var created int64
	var revoked sql.Null[int64]
	if err := r.Scan(&l.ID, &hash, &l.Hint, &l.TenantID, &created, &revoked); err != nil {
		return License{}, err
	}
	l.Hash, _ = hex.DecodeString(hash)
	l.CreatedAt, l.RevokedAt = fromTS(created), ptrTS(revoked)
	return l, nil
}

// CreateLicense stores l. An unknown tenant is ErrNotFound, a duplicate
// id or GUID ErrConflict.
func (s *sqlStore) CreateLicense(ctx context.Context, l License) error {
	_, err := s.exec(ctx, `INSERT INTO licenses (id, guid_hash, hint, tenant_id, created_at, revoked_at)
		VALUES (?, ?, ?, ?, ?, ?)`, l.ID, hex.EncodeToString(l.Hash), l.Hint, l.TenantID, ts(l.CreatedAt), nullTS(l.RevokedAt))
	return wrapf(err, "create license %s", l.ID)
}

// CreateTenantLicensed stores a tenant and its first license in one
// transaction: a tenant onboarded by the licensing application is never
// left without one.
func (s *sqlStore) CreateTenantLicensed(ctx context.Context, t Tenant, l License) error {
	err := s.write(ctx, func(tx *txn) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)`,
			t.ID, t.Name, ts(t.CreatedAt)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO licenses (id, guid_hash, hint, tenant_id, created_at, revoked_at)
			VALUES (?, ?, ?, ?, ?, ?)`, l.ID, hex.EncodeToString(l.Hash), l.Hint, t.ID, ts(l.CreatedAt), nullTS(l.RevokedAt))
		return err
	})
	return wrapf(err, "create tenant %s with license %s", t.ID, l.ID)
}

// GetLicense returns the license with that id, revoked or not.
func (s *sqlStore) GetLicense(ctx context.Context, id string) (License, error) {
	l, err := scanLicense(s.db.QueryRowContext(ctx, `SELECT `+licenseCols+` FROM licenses WHERE id = ?`, id))
	return l, wrapf(err, "get license %s", id)
}

// GetLicenseByHash returns the license whose GUID hashes to hash, revoked
// or not; the caller decides.
func (s *sqlStore) GetLicenseByHash(ctx context.Context, hash []byte) (License, error) {
	l, err := scanLicense(s.db.QueryRowContext(ctx, `SELECT `+licenseCols+` FROM licenses WHERE guid_hash = ?`, hex.EncodeToString(hash)))
	return l, wrapf(err, "get license by hash")
}

// ListLicenses returns the tenant's licenses, revoked ones included,
// oldest first. A tenant has a handful (one live, the rotated ones).
func (s *sqlStore) ListLicenses(ctx context.Context, tenantID string) ([]License, error) {
	ls, err := queryAll(ctx, s.db, scanLicense, `SELECT `+licenseCols+` FROM licenses
		WHERE tenant_id = ? ORDER BY created_at, id`, tenantID)
	return ls, wrapf(err, "list licenses of tenant %s", tenantID)
}

// RevokeLicense marks the license revoked and tells the other relays
// (ChangeLicenseRevoked). Revoking it again keeps the first time.
func (s *sqlStore) RevokeLicense(ctx context.Context, id string, at time.Time) error {
	err := s.execOneChange(ctx, Change{Kind: ChangeLicenseRevoked, ID: id},
		`UPDATE licenses SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, ts(at), id)
	return wrapf(err, "revoke license %s", id)
}
