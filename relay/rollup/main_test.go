package rollup

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/nanodems/connector/internal/testpg"
	"github.com/nanodems/connector/relay/store"
)

func TestMain(m *testing.M) { testpg.Main(m) }

// forEachStore runs test on SQLite and on PostgreSQL (internal/testpg).
func forEachStore(t *testing.T, test func(t *testing.T, st store.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		s, err := store.OpenSQLite(filepath.Join(t.TempDir(), "relay.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		test(t, s)
	})
	t.Run("postgres", func(t *testing.T) {
		s, err := store.OpenPostgres(context.Background(), testpg.DSN(t), store.PostgresOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		test(t, s)
	})
}
