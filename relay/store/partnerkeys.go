package store

import (
	"context"
	"database/sql"
	"encoding/hex"
	"time"
)

// PartnerKey is an nk_ key: a partner's server mints per-operator CLI
// sessions of one tenant with it. Only the SHA-256 of the key is stored.
// AllowedCIDR, when not empty, is the only network it is accepted from.
type PartnerKey struct {
	ID          string
	Hash        []byte
	TenantID    string
	Label       string
	AllowedCIDR string
	CreatedAt   time.Time
	RevokedAt   *time.Time
}

const partnerKeyCols = `id, hash, tenant_id, label, allowed_ip_cidr, created_at, revoked_at`

func scanPartnerKey(r rowScanner) (PartnerKey, error) {
	var k PartnerKey
	var hash string
	var created int64
	var revoked sql.Null[int64]
	if err := r.Scan(&k.ID, &hash, &k.TenantID, &k.Label, &k.AllowedCIDR, &created, &revoked); err != nil {
		return PartnerKey{}, err
	}
	k.Hash, _ = hex.DecodeString(hash)
	k.CreatedAt, k.RevokedAt = fromTS(created), ptrTS(revoked)
	return k, nil
}

// CreatePartnerKey stores k. An unknown tenant is ErrNotFound, a
// duplicate id or hash ErrConflict.
func (s *sqlStore) CreatePartnerKey(ctx context.Context, k PartnerKey) error {
	_, err := s.exec(ctx, `INSERT INTO partner_keys (id, hash, tenant_id, label, allowed_ip_cidr, created_at, revoked_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, k.ID, hex.EncodeToString(k.Hash), k.TenantID, k.Label, k.AllowedCIDR,
		ts(k.CreatedAt), nullTS(k.RevokedAt))
	return wrapf(err, "create partner key %s", k.ID)
}

// GetPartnerKey returns the key with that id, revoked or not.
func (s *sqlStore) GetPartnerKey(ctx context.Context, id string) (PartnerKey, error) {
	k, err := scanPartnerKey(s.db.QueryRowContext(ctx, `SELECT `+partnerKeyCols+` FROM partner_keys WHERE id = ?`, id))
	return k, wrapf(err, "get partner key %s", id)
}

// GetPartnerKeyByHash returns the key that hashes to hash, revoked or
// not; the caller decides.
func (s *sqlStore) GetPartnerKeyByHash(ctx context.Context, hash []byte) (PartnerKey, error) {
	k, err := scanPartnerKey(s.db.QueryRowContext(ctx, `SELECT `+partnerKeyCols+` FROM partner_keys WHERE hash = ?`, hex.EncodeToString(hash)))
	return k, wrapf(err, "get partner key by hash")
}

// ListPartnerKeys returns the tenant's keys, revoked ones included,
// oldest first.
func (s *sqlStore) ListPartnerKeys(ctx context.Context, tenantID string) ([]PartnerKey, error) {
	ks, err := queryAll(ctx, s.db, scanPartnerKey, `SELECT `+partnerKeyCols+` FROM partner_keys
		WHERE tenant_id = ? ORDER BY created_at, id`, tenantID)
	return ks, wrapf(err, "list partner keys of tenant %s", tenantID)
}

// RevokePartnerKey marks the key revoked and, in the same transaction,
// every live CLI session it issued, and returns the ids of the sessions
// it revoked. The other relays hear of the key and of each session
// (ChangePartnerKeyRevoked, ChangeCLISessionRevoked with By set to the
// key) if and only if it commits. Revoking the key again keeps its first time and revokes the
// sessions still live.
func (s *sqlStore) RevokePartnerKey(ctx context.Context, id string, at time.Time) ([]string, error) {
	var sessions []string
	err := s.write(ctx, func(tx *txn) error {
		sessions = nil
		res, err := tx.ExecContext(ctx, `UPDATE partner_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, ts(at), id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		rows, err := tx.QueryContext(ctx, `SELECT id FROM cli_sessions WHERE issuer_key_id = ? AND revoked_at IS NULL`+tx.d.forUpdate, id)
		if err != nil {
			return err
		}
		for rows.Next() {
			var sid string
			if err := rows.Scan(&sid); err != nil {
				rows.Close()
				return err
			}
			sessions = append(sessions, sid)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE cli_sessions SET revoked_at = ? WHERE issuer_key_id = ? AND revoked_at IS NULL`, ts(at), id); err != nil {
			return err
		}
		if err := tx.notify(ctx, Change{Kind: ChangePartnerKeyRevoked, ID: id}); err != nil {
			return err
		}
		for _, sid := range sessions {
			if err := tx.notify(ctx, Change{Kind: ChangeCLISessionRevoked, ID: sid, By: id}); err != nil {
				return err
			}
		}
		return nil
	})
	return sessions, wrapf(err, "revoke partner key %s", id)
}
