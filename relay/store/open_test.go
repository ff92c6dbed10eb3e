package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nanodems/connector/internal/testpg"
)

// Open picks the backend from the name --database gives, and refuses a
// name it cannot use with the reason.
func TestOpen(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{filepath.Join(t.TempDir(), "a.db"), "sqlite:" + filepath.Join(t.TempDir(), "b.db")} {
		s, err := Open(ctx, name, PostgresOptions{})
		must(t, err)
		if _, ok := s.(*SQLite); !ok {
			t.Errorf("Open(%q) = %T, want *SQLite", name, s)
		}
		must(t, s.Close())
	}
	if _, err := Open(ctx, "", PostgresOptions{}); err == nil {
		t.Error("Open of no name succeeded")
	}
	if _, err := Open(ctx, "postgres://bad host/db", PostgresOptions{}); err == nil || !strings.Contains(err.Error(), "postgres") {
		t.Errorf("Open of a malformed URL: %v, want a postgres parse error", err)
	}
	dsn := testpg.DSN(t)
	s, err := Open(ctx, dsn, PostgresOptions{MaxConns: 2})
	must(t, err)
	defer s.Close()
	pg, ok := s.(*Postgres)
	if !ok {
		t.Fatalf("Open(%q) = %T, want *Postgres", dsn, s)
	}
	if n := pg.db.db.Stats().MaxOpenConnections; n != 2 {
		t.Errorf("pool bound %d, want 2", n)
	}
}
