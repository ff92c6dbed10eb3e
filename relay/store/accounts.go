package store

import (
	"context"
	"database/sql"
	"time"
)

// GetSetting returns the value of key, or ErrNotFound.
func (s *sqlStore) GetSetting(ctx context.Context, key string) (string, error) {
	var v string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
	return v, wrapf(err, "get setting %s", key)
}

// SetSetting creates or replaces key.
func (s *sqlStore) SetSetting(ctx context.Context, key, value string) error {
	_, err := s.exec(ctx, `INSERT INTO settings (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	return wrapf(err, "set setting %s", key)
}

func (s *sqlStore) CreateTenant(ctx context.Context, t Tenant) error {
	_, err := s.exec(ctx, `INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)`,
		t.ID, t.Name, ts(t.CreatedAt))
	return wrapf(err, "create tenant %s", t.ID)
}

func (s *sqlStore) GetTenant(ctx context.Context, id string) (Tenant, error) {
	var t Tenant
	var created int64
	err := s.db.QueryRowContext(ctx, `SELECT id, name, created_at FROM tenants WHERE id = ?`, id).
		Scan(&t.ID, &t.Name, &created)
	if err != nil {
		return Tenant{}, wrapf(err, "get tenant %s", id)
	}
	t.CreatedAt = fromTS(created)
	return t, nil
}

// CreateUser stores u. Emails are compared exactly; callers normalize
// them. A duplicate id or email is ErrConflict.
func (s *sqlStore) CreateUser(ctx context.Context, u User) error {
	_, err := s.exec(ctx, `INSERT INTO users (id, tenant_id, email, password_hash, superadmin, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`,
		u.ID, nullStr(u.TenantID), u.Email, u.PasswordHash, u.Superadmin, ts(u.CreatedAt))
	return wrapf(err, "create user %s", u.ID)
}

const userCols = `id, COALESCE(tenant_id, ''), email, password_hash, superadmin, created_at, disabled_at`

func scanUser(r rowScanner) (User, error) {
	var u User
	var created int64
	var disabled sql.Null[int64]
	if err := r.Scan(&u.ID, &u.TenantID, &u.Email, &u.PasswordHash, &u.Superadmin, &created, &disabled); err != nil {
		return User{}, err
	}
	u.CreatedAt, u.DisabledAt = fromTS(created), ptrTS(disabled)
	return u, nil
}

func (s *sqlStore) GetUser(ctx context.Context, id string) (User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
	return u, wrapf(err, "get user %s", id)
}

func (s *sqlStore) GetUserByEmail(ctx context.Context, email string) (User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE email = ?`, email))
	return u, wrapf(err, "get user by email %s", email)
}

func (s *sqlStore) CreateAPIToken(ctx context.Context, t APIToken) error {
	_, err := s.exec(ctx, `INSERT INTO api_tokens (id, user_id, tenant_id, hash, label, created_at, revoked_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.UserID, nullStr(t.TenantID), t.Hash, t.Label, ts(t.CreatedAt), nullTS(t.RevokedAt))
	return wrapf(err, "create api token %s", t.ID)
}

// GetAPITokenByHash returns the token whether or not it is revoked; the
// caller decides.
func (s *sqlStore) GetAPITokenByHash(ctx context.Context, hash []byte) (APIToken, error) {
	return s.getAPIToken(ctx, "hash", hash)
}

// GetAPIToken returns the token with that id, revoked or not.
func (s *sqlStore) GetAPIToken(ctx context.Context, id string) (APIToken, error) {
	return s.getAPIToken(ctx, "id", id)
}

// getAPIToken looks a token up by one of its unique columns.
func (s *sqlStore) getAPIToken(ctx context.Context, col string, key any) (APIToken, error) {
	t, err := scanAPIToken(s.db.QueryRowContext(ctx, `SELECT `+apiTokenCols+` FROM api_tokens WHERE `+col+` = ?`, key))
	if err != nil {
		return APIToken{}, wrapf(err, "get api token by %s", col)
	}
	return t, nil
}

// TouchAPIToken records a use of the token at at. The relay calls it
// when it looks the token up in the store, which its cache bounds to one
// write per token every few seconds.
func (s *sqlStore) TouchAPIToken(ctx context.Context, id string, at time.Time) error {
	_, err := s.exec(ctx, `UPDATE api_tokens SET last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < ? THEN ? ELSE last_used_at END WHERE id = ?`, ts(at), ts(at), id)
	return wrapf(err, "touch api token %s", id)
}

// RevokeAPIToken marks the token revoked. Revoking it again keeps the
// first time.
func (s *sqlStore) RevokeAPIToken(ctx context.Context, id string, at time.Time) error {
	err := s.execOneChange(ctx, Change{Kind: ChangeTokenRevoked, ID: id}, `UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, ts(at), id)
	return wrapf(err, "revoke api token %s", id)
}
