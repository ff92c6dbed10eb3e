package store

import (
	"context"
	"time"
)

// TTL locks name jobs that must run on one relay at a time (rollups, the
// janitor, the lease reaper). A lock is a row: taken when free or expired,
// renewed by its holder before it expires, released when the holder stops.
// A holder that dies stops renewing, and another relay takes the lock once
// its TTL has passed. Holders are relay node names; the lock is only as
// exclusive as the clocks of the relays agree, so TTLs are seconds, not
// milliseconds.

// TryLock takes the lock name for holder until now+ttl if it is free,
// expired, or already holder's (then it is renewed). It reports whether
// holder has the lock.
func (s *sqlStore) TryLock(ctx context.Context, name, holder string, ttl time.Duration, now time.Time) (bool, error) {
	// The conflict branch updates only when the row may be taken: a
	// refused take changes no row.
	taken, err := s.exec(ctx, `INSERT INTO locks (name, holder, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE locks.expires_at <= ? OR locks.holder = excluded.holder`,
		name, holder, ts(now.Add(ttl)), ts(now))
	return taken, wrapf(err, "take lock %s", name)
}

// RenewLock extends holder's lock to now+ttl. It reports false when holder
// no longer has it (it expired and another relay took it): the job must
// stop.
func (s *sqlStore) RenewLock(ctx context.Context, name, holder string, ttl time.Duration, now time.Time) (bool, error) {
	renewed, err := s.exec(ctx, `UPDATE locks SET expires_at = ? WHERE name = ? AND holder = ?`,
		ts(now.Add(ttl)), name, holder)
	return renewed, wrapf(err, "renew lock %s", name)
}

// ReleaseLock frees holder's lock at once, so the next relay need not wait
// out the TTL. Releasing a lock held by another is a no-op.
func (s *sqlStore) ReleaseLock(ctx context.Context, name, holder string) error {
	_, err := s.exec(ctx, `DELETE FROM locks WHERE name = ? AND holder = ?`, name, holder)
	return wrapf(err, "release lock %s", name)
}
