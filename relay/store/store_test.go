package store

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/nanodems/connector/internal/testpg"
)

func TestMain(m *testing.M) { testpg.Main(m) }

// forEachStore runs a store test on each backend, as subtests "sqlite"
// and "postgres": both must behave alike.
func forEachStore(t *testing.T, test func(t *testing.T, s *sqlStore)) {
	t.Run("sqlite", func(t *testing.T) { test(t, &openTest(t).sqlStore) })
	t.Run("postgres", func(t *testing.T) { test(t, &openPostgresTest(t).sqlStore) })
}

func openTest(t *testing.T) *SQLite {
	t.Helper()
	s, err := OpenSQLite(filepath.Join(t.TempDir(), "relay.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openPostgresTest opens a store on a fresh database of the test
// PostgreSQL (internal/testpg).
func openPostgresTest(t *testing.T) *Postgres {
	t.Helper()
	return openPostgresDSN(t, testpg.DSN(t))
}

func openPostgresDSN(t *testing.T, dsn string) *Postgres {
	t.Helper()
	s, err := OpenPostgres(context.Background(), dsn, PostgresOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
