package store

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nanodems/connector/internal/testpg"
)

// pairs opens two stores on one database of each backend, as two relays
// would: two SQLite stores on one file in this process, two PostgreSQL
// stores on one database.
func forEachPair(t *testing.T, test func(t *testing.T, a, b Store)) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "relay.db")
		a := openSQLitePath(t, path)
		b := openSQLitePath(t, path)
		test(t, a, b)
	})
	t.Run("postgres", func(t *testing.T) {
		a := openPostgresTest(t)
		b := openPostgresDSN(t, a.dsn)
		test(t, a, b)
	})
}

func openSQLitePath(t *testing.T, path string) *SQLite {
	t.Helper()
	s, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// changeWait bounds the wait for a change that is on its way; it only
// keeps a broken build from hanging.
const changeWait = 10 * time.Second

// nextChange is the next change on ch.
func nextChange(t *testing.T, ch <-chan Change) Change {
	t.Helper()
	select {
	case c, ok := <-ch:
		if !ok {
			t.Fatal("change feed closed")
		}
		return c
	case <-time.After(changeWait):
		t.Fatal("no change arrived")
	}
	return Change{}
}

// TestChangesReachOtherStores proves that each write that revokes or
// changes what relays cache reaches the other store on the same database
// as one Change naming the row, in commit order; that a write that fails
// (rolled back) sends nothing; and that a store does not hear its own.
func TestChangesReachOtherStores(t *testing.T) {
	forEachPair(t, func(t *testing.T, a, b Store) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		seed(t, sqlOf(a))
		fromA, fromB := a.Changes(ctx), b.Changes(ctx)
		must(t, a.CreateAgent(ctx, Agent{ID: "ag1", SiteID: "s1", CertSerial: "01", CreatedAt: t0}))
		must(t, a.CreateUser(ctx, User{ID: "u1", TenantID: "t1", Email: "u1@x", PasswordHash: "h", CreatedAt: t0}))
		must(t, a.CreateAPIToken(ctx, APIToken{ID: "tok1", UserID: "u1", TenantID: "t1", Hash: []byte("h1"), CreatedAt: t0}))
		must(t, a.CreateCLISession(ctx, CLISession{ID: "cli1", Hash: []byte("c1"), TenantID: "t1", SiteIDs: []string{"s1"},
			CreatedAt: t0, ExpiresAt: at(time.Hour), HardCapAt: at(2 * time.Hour)}))
		must(t, a.CreateSession(ctx, Session{Hash: []byte{0xab, 0xcd}, UserID: "u1", TenantID: "t1", CreatedAt: t0, ExpiresAt: at(time.Hour)}))
		must(t, a.CreatePartnerKey(ctx, PartnerKey{ID: "pk1", Hash: []byte("k1"), TenantID: "t1", CreatedAt: t0}))
		must(t, a.CreateCLISession(ctx, CLISession{ID: "cli2", Hash: []byte("c2"), TenantID: "t1", SiteIDs: []string{"s1"},
			CreatedAt: t0, ExpiresAt: at(time.Hour), HardCapAt: at(2 * time.Hour), IssuerKeyID: "pk1"}))

		// A failed write notes nothing: the next change B hears is the
		// one after it.
		wantErr(t, a.RevokeAgent(ctx, "nobody", t0), ErrNotFound)
		_, _, err := a.ApplyDeviceChange(ctx, DeviceChange{Op: DeviceCreate, Device: Device{ID: "dx", SiteID: "nosuch", Host: "10.0.0.1", CreatedAt: t0}, Now: t0})
		wantErr(t, err, ErrNotFound)

		d, _, err := a.ApplyDeviceChange(ctx, DeviceChange{Op: DeviceCreate, Device: Device{ID: "d1", SiteID: "s1", Host: "10.0.0.5", Ports: []int{80}, CreatedAt: t0},
			Handles: []Handle{{Handle: "h_1", Port: 80, CreatedAt: t0}}, Now: t0})
		must(t, err)
		pinned, err := a.PinHandle(ctx, "h_1", "ag1")
		must(t, err)
		if pinned != "ag1" {
			t.Fatalf("pinned to %q, want ag1", pinned)
		}
		pinned, err = a.PinHandle(ctx, "h_1", "ag2") // pinned already: no change
		must(t, err)
		if pinned != "ag1" {
			t.Fatalf("second pin moved the handle to %q, want it kept on ag1", pinned)
		}
		must(t, a.RevokeAgent(ctx, "ag1", at(time.Second)))
		must(t, a.RevokeAPIToken(ctx, "tok1", at(time.Second)))
		must(t, a.RevokeCLISession(ctx, "cli1", at(time.Second)))
		_, err = a.RevokePartnerKey(ctx, "pk1", at(time.Second))
		must(t, err)
		must(t, a.DeleteSession(ctx, []byte{0xab, 0xcd}))
		must(t, a.RevokeHandle(ctx, "h_1", at(time.Second)))
		must(t, a.UpdateSite(ctx, Site{ID: "s2", TenantID: "t1", Name: "Renamed", AllowLoopback: true}))
		must(t, a.SetDeviceCredentials(ctx, d.ID, []byte("sealed"), t0))
		must(t, a.Notify(ctx, Change{Kind: ChangeResync}))

		want := []Change{
			{Kind: ChangeDevice, ID: "d1", SiteID: "s1", TenantID: "t1"},
			{Kind: ChangeHandlePinned, ID: "h_1"},
			{Kind: ChangeAgentRevoked, ID: "ag1"},
			{Kind: ChangeTokenRevoked, ID: "tok1"},
			{Kind: ChangeCLISessionRevoked, ID: "cli1"},
			// The key's sessions say the key revoked them.
			{Kind: ChangePartnerKeyRevoked, ID: "pk1"},
			{Kind: ChangeCLISessionRevoked, ID: "cli2", By: "pk1"},
			{Kind: ChangeSessionEnded, ID: "abcd"},
			{Kind: ChangeHandleRevoked, ID: "h_1"},
			{Kind: ChangeSite, ID: "s2", TenantID: "t1"},
			{Kind: ChangeDeviceCredentials, ID: "d1"},
			{Kind: ChangeResync},
		}
		for i, w := range want {
			if got := nextChange(t, fromB); got != w {
				t.Fatalf("change %d = %+v, want %+v", i, got, w)
			}
		}
		// A hears B's change, and not one of its own before it.
		must(t, b.RevokeHandle(ctx, "h_1", at(2*time.Second)))
		if got := nextChange(t, fromA); got != (Change{Kind: ChangeHandleRevoked, ID: "h_1"}) {
			t.Fatalf("A heard %+v first, want B's handle revocation", got)
		}
		// Ending the context closes the channel.
		cancel()
		for range fromB {
		}
	})
}

// sqlOf is the sqlStore under a test's Store.
func sqlOf(s Store) *sqlStore {
	switch v := s.(type) {
	case *SQLite:
		return &v.sqlStore
	case *Postgres:
		return &v.sqlStore
	}
	panic(fmt.Sprintf("unknown store %T", s))
}

// TestPostgresListenerResyncs proves that when the connection that
// listens for changes breaks, the store reconnects and tells its
// subscribers to resync (notifications sent meanwhile are lost), and
// changes flow again afterwards.
func TestPostgresListenerResyncs(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := openPostgresTest(t)
	b := openPostgresDSN(t, a.dsn)
	seed(t, &a.sqlStore)
	fromB := b.Changes(ctx)
	// End every LISTEN session on the database but the caller's own:
	// B's listener among them.
	var n int
	must(t, a.db.QueryRowContext(ctx, `SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%'`).Scan(&n))
	if n != 2 {
		t.Fatalf("terminated %d listening sessions, want 2 (A's and B's)", n)
	}
	if got := nextChange(t, fromB); got.Kind != ChangeResync {
		t.Fatalf("first change after the break = %+v, want resync", got)
	}
	must(t, a.CreateAgent(ctx, Agent{ID: "ag1", SiteID: "s1", CertSerial: "01", CreatedAt: t0}))
	must(t, a.RevokeAgent(ctx, "ag1", t0))
	if got := nextChange(t, fromB); got != (Change{Kind: ChangeAgentRevoked, ID: "ag1"}) {
		t.Fatalf("change after reconnect = %+v, want the revocation", got)
	}
}

// TestPostgresMigrateConcurrently proves that relays starting together on
// a fresh database all open it, and that each migration is applied once.
func TestPostgresMigrateConcurrently(t *testing.T) {
	emptyDSN := testpg.DSN(t) // a database no store has opened
	const relays = 4
	var wg sync.WaitGroup
	errs := make([]error, relays)
	stores := make([]*Postgres, relays)
	for i := range relays {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = OpenPostgres(context.Background(), emptyDSN, PostgresOptions{})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("relay %d: %v", i, err)
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	must(t, err)
	rows, err := stores[0].db.QueryContext(context.Background(), `SELECT version, COUNT(*) FROM schema_migrations GROUP BY version`)
	must(t, err)
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var v string
		var n int
		must(t, rows.Scan(&v, &n))
		if n != 1 {
			t.Errorf("migration %s recorded %d times", v, n)
		}
		seen++
	}
	must(t, rows.Err())
	if seen != len(names) {
		t.Fatalf("%d migrations recorded, want %d", seen, len(names))
	}
}
