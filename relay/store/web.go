package store

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"
)

func (s *sqlStore) CreateSession(ctx context.Context, ss Session) error {
	_, err := s.exec(ctx, `INSERT INTO sessions (hash, user_id, tenant_id, csrf, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?)`,
		ss.Hash, ss.UserID, nullStr(ss.TenantID), ss.CSRF, ts(ss.CreatedAt), ts(ss.ExpiresAt))
	return wrapf(err, "create session")
}

// GetSession returns the session whether or not it has expired; the
// caller decides.
func (s *sqlStore) GetSession(ctx context.Context, hash []byte) (Session, error) {
	var ss Session
	var created, expires int64
	err := s.db.QueryRowContext(ctx, `SELECT hash, user_id, COALESCE(tenant_id, ''), csrf, created_at, expires_at
		FROM sessions WHERE hash = ?`, hash).
		Scan(&ss.Hash, &ss.UserID, &ss.TenantID, &ss.CSRF, &created, &expires)
	if err != nil {
		return Session{}, wrapf(err, "get session")
	}
	ss.CreatedAt, ss.ExpiresAt = fromTS(created), fromTS(expires)
	return ss, nil
}

func (s *sqlStore) SetSessionTenant(ctx context.Context, hash []byte, tenantID string) error {
	return wrapf(s.execOne(ctx, `UPDATE sessions SET tenant_id = ? WHERE hash = ?`, nullStr(tenantID), hash), "set session tenant")
}

// DeleteSession ends a session; deleting an unknown one is not an error
// (sign-out is idempotent).
func (s *sqlStore) DeleteSession(ctx context.Context, hash []byte) error {
	_, err := s.execChange(ctx, Change{Kind: ChangeSessionEnded, ID: hex.EncodeToString(hash)}, `DELETE FROM sessions WHERE hash = ?`, hash)
	return wrapf(err, "delete session")
}

// SetDeviceCredentials stores the sealed login of a device; nil removes it.
func (s *sqlStore) SetDeviceCredentials(ctx context.Context, deviceID string, sealed []byte, now time.Time) error {
	err := s.write(ctx, func(tx *txn) error {
		if err := setCredentials(ctx, tx, deviceID, sealed, now); err != nil {
			return err
		}
		return tx.notify(ctx, Change{Kind: ChangeDeviceCredentials, ID: deviceID})
	})
	return wrapf(err, "set credentials of %s", deviceID)
}

// setCredentials stores (nil: removes) a device's sealed login inside tx.
func setCredentials(ctx context.Context, tx *txn, deviceID string, sealed []byte, now time.Time) error {
	var err error
	if sealed == nil {
		_, err = tx.ExecContext(ctx, `DELETE FROM device_credentials WHERE device_id = ?`, deviceID)
	} else {
		_, err = tx.ExecContext(ctx, `INSERT INTO device_credentials (device_id, sealed, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (device_id) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at`,
			deviceID, sealed, ts(now))
	}
	if err != nil {
		return fmt.Errorf("credentials of %s: %w", deviceID, err)
	}
	return nil
}

// GetDeviceCredentials returns the sealed login, or ErrNotFound.
func (s *sqlStore) GetDeviceCredentials(ctx context.Context, deviceID string) ([]byte, error) {
	var sealed []byte
	err := s.db.QueryRowContext(ctx, `SELECT sealed FROM device_credentials WHERE device_id = ?`, deviceID).Scan(&sealed)
	return sealed, wrapf(err, "get credentials of %s", deviceID)
}

func (s *sqlStore) GetCameraCert(ctx context.Context, handle string) (CameraCert, error) {
	var c CameraCert
	var first, last int64
	err := s.db.QueryRowContext(ctx, `SELECT handle, subject, fingerprint, first_seen, last_seen
		FROM camera_certs WHERE handle = ?`, handle).Scan(&c.Handle, &c.Subject, &c.Fingerprint, &first, &last)
	if err != nil {
		return CameraCert{}, wrapf(err, "get camera cert of %s", handle)
	}
	c.FirstSeen, c.LastSeen = fromTS(first), fromTS(last)
	return c, nil
}

// PutCameraCert records the certificate now seen behind a handle.
func (s *sqlStore) PutCameraCert(ctx context.Context, c CameraCert) error {
	_, err := s.exec(ctx, `INSERT INTO camera_certs (handle, subject, fingerprint, first_seen, last_seen) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (handle) DO UPDATE SET subject = excluded.subject, fingerprint = excluded.fingerprint, last_seen = excluded.last_seen`,
		c.Handle, c.Subject, c.Fingerprint, ts(c.FirstSeen), ts(c.LastSeen))
	return wrapf(err, "put camera cert of %s", c.Handle)
}
