package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"
)

// migrations holds the schema as numbered SQL files. They are applied in
// name order and never edited once released: a change is a new file.
//
// Both dialects run the same files. A file that PostgreSQL cannot run as
// written has a twin of the same name under migrations/postgres/, which
// PostgreSQL runs instead; that is the case only for the first three,
// released before the PostgreSQL store, which say BLOB (bytea there) and
// give the audit log SQLite's rowid key (an identity column there). New
// migrations are written in SQL both engines read alike (TEXT, BIGINT,
// INTEGER 0/1 for booleans, no BLOB) and need no twin.
//
//go:embed migrations/*.sql migrations/postgres/*.sql
var migrations embed.FS

// migrationLockKey is the PostgreSQL advisory lock that relays starting
// together on one database take before they look at schema_migrations:
// "nanodems" read as a big-endian integer.
const migrationLockKey int64 = 0x6e616e6f64656d73

// migrate applies the migrations not yet recorded in schema_migrations.
// All of them run in one transaction, so a failed upgrade leaves the
// database as it was. Two processes opening a fresh database cannot both
// apply one: SQLite's write lock orders them, and on PostgreSQL the
// transaction first takes a transaction-scoped advisory lock
// (pg_advisory_xact_lock), released by its commit or rollback.
func (s *sqlStore) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql") // sorted
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *txn) error {
		if s.d.name == postgresDialect.name {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, migrationLockKey); err != nil {
				return fmt.Errorf("migrate: lock: %w", err)
			}
		}
		_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    TEXT PRIMARY KEY,
			applied_at BIGINT NOT NULL
		)`)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		for _, name := range names {
			version := strings.TrimSuffix(path.Base(name), ".sql")
			var n int
			err := tx.QueryRowContext(ctx,
				`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n)
			if err != nil {
				return fmt.Errorf("migrate %s: %w", version, err)
			}
			if n > 0 {
				continue
			}
			script, err := s.d.migration(name)
			if err != nil {
				return fmt.Errorf("migrate %s: %w", version, err)
			}
			// No arguments: each driver runs the script's statements
			// one after another (PostgreSQL: the simple protocol).
			if _, err := tx.tx.ExecContext(ctx, script); err != nil {
				return fmt.Errorf("migrate %s: %w", version, err)
			}
			_, err = tx.ExecContext(ctx,
				`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
				version, ts(time.Now()))
			if err != nil {
				return fmt.Errorf("migrate %s: %w", version, err)
			}
		}
		return nil
	})
}

// migration is the text of migration file name (migrations/NNNN_x.sql) in
// d: its dialect's twin if it has one.
func (d *dialect) migration(name string) (string, error) {
	if d.name != sqliteDialect.name {
		b, err := migrations.ReadFile(path.Join("migrations", d.name, path.Base(name)))
		if err == nil {
			return string(b), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	b, err := migrations.ReadFile(name)
	return string(b), err
}
