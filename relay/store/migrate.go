package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"
)

// migrations holds the schema as numbered SQL files. They are applied in
// name order and never edited once released: a change is a new file.
//
//go:embed migrations/*.sql
var migrations embed.FS

// migrate applies the migrations not yet recorded in schema_migrations.
// All of them run in one transaction, so a failed upgrade leaves the file
// as it was, and two processes opening a fresh file cannot both apply one.
func (s *SQLite) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql") // sorted
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
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
			script, err := migrations.ReadFile(name)
			if err != nil {
				return fmt.Errorf("migrate %s: %w", version, err)
			}
			if _, err := tx.ExecContext(ctx, string(script)); err != nil {
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
