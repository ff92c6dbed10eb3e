package store

import (
	"context"
	"time"
)

// DisableUser disables the user and ends every credential of theirs in
// the same transaction: API tokens and CLI sessions are revoked, browser
// sessions deleted. Relays act on ChangeUserDisabled by cutting every use
// of the user's credentials, so one change carries what would otherwise
// be one per credential. Disabling again keeps the first time and sends
// the change again (a relay that missed it cuts then).
func (s *sqlStore) DisableUser(ctx context.Context, id string, at time.Time) error {
	err := s.write(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET disabled_at = COALESCE(disabled_at, ?) WHERE id = ?`, ts(at), id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		for _, q := range []string{
			`UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE user_id = ?`,
			`UPDATE cli_sessions SET revoked_at = COALESCE(revoked_at, ?) WHERE user_id = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, ts(at), id); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ?`, id); err != nil {
			return err
		}
		return tx.notify(ctx, Change{Kind: ChangeUserDisabled, ID: id})
	})
	return wrapf(err, "disable user %s", id)
}

// SetUserSuperadmin sets or clears the user's superadmin flag.
func (s *sqlStore) SetUserSuperadmin(ctx context.Context, id string, on bool) error {
	err := one(s.exec(ctx, `UPDATE users SET superadmin = ? WHERE id = ?`, on, id))
	return wrapf(err, "set superadmin of user %s", id)
}
