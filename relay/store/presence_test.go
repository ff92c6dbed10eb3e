package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/nanodems/connector/internal/testpg"
)

// TestLeases: a lease is read back while live, ignored once expired,
// renewed by whoever holds the agent now, deleted only by its holder, and
// reaped when expired.
func TestLeases(t *testing.T) { forEachStore(t, testLeases) }

func testLeases(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	l := Lease{AgentID: "ag1", SiteID: "s1", RelayNode: "r1", Endpoint: "10.0.0.1:7443", Active: 3, ExpiresAt: at(90 * time.Second)}
	must(t, s.PutLease(ctx, l))
	got, err := s.LookupLease(ctx, "ag1", at(0))
	must(t, err)
	wantEqual(t, got, l)
	_, err = s.LookupLease(ctx, "ag1", at(90*time.Second))
	wantErr(t, err, ErrNotFound)

	// The agent moved to r2: r1's late delete must not remove r2's lease.
	l2 := Lease{AgentID: "ag1", SiteID: "s1", RelayNode: "r2", Endpoint: "10.0.0.2:7443", ExpiresAt: at(100 * time.Second)}
	must(t, s.PutLease(ctx, l2))
	must(t, s.DeleteLease(ctx, "ag1", "r1"))
	got, err = s.LookupLease(ctx, "ag1", at(95*time.Second))
	must(t, err)
	wantEqual(t, got, l2)

	must(t, s.PutLease(ctx, Lease{AgentID: "ag2", SiteID: "s1", RelayNode: "r1", Endpoint: "e", ExpiresAt: at(10 * time.Second)}))
	must(t, s.PutLease(ctx, Lease{AgentID: "ag3", SiteID: "s2", RelayNode: "r1", Endpoint: "e", ExpiresAt: at(50 * time.Second)}))
	site, err := s.ListSiteLeases(ctx, "s1", at(5*time.Second))
	must(t, err)
	if len(site) != 2 || site[0].AgentID != "ag1" || site[1].AgentID != "ag2" {
		t.Fatalf("site leases = %+v, want ag1 and ag2", site)
	}
	site, err = s.ListSiteLeases(ctx, "s1", at(20*time.Second))
	must(t, err)
	if len(site) != 1 || site[0].AgentID != "ag1" {
		t.Fatalf("site leases after ag2 expired = %+v, want ag1", site)
	}

	n, err := s.ReapLeases(ctx, at(60*time.Second))
	must(t, err)
	wantEqual(t, n, 2) // ag2 and ag3
	must(t, s.DeleteLease(ctx, "ag1", "r2"))
	_, err = s.LookupLease(ctx, "ag1", at(0))
	wantErr(t, err, ErrNotFound)
}

// TestLocks: a lock is taken when free, refused while another holds it,
// renewed only by its holder, passed on once expired, and freed at once
// on release.
func TestLocks(t *testing.T) { forEachStore(t, testLocks) }

func testLocks(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	ttl := 10 * time.Second
	ok, err := s.TryLock(ctx, "rollup", "r1", ttl, at(0))
	must(t, err)
	wantEqual(t, ok, true)
	ok, err = s.TryLock(ctx, "rollup", "r2", ttl, at(5*time.Second))
	must(t, err)
	wantEqual(t, ok, false)
	ok, err = s.TryLock(ctx, "rollup", "r1", ttl, at(5*time.Second)) // its own: renewed
	must(t, err)
	wantEqual(t, ok, true)
	ok, err = s.RenewLock(ctx, "rollup", "r2", ttl, at(6*time.Second))
	must(t, err)
	wantEqual(t, ok, false)
	ok, err = s.RenewLock(ctx, "rollup", "r1", ttl, at(6*time.Second))
	must(t, err)
	wantEqual(t, ok, true) // now held until 16 s
	ok, err = s.TryLock(ctx, "rollup", "r2", ttl, at(15*time.Second))
	must(t, err)
	wantEqual(t, ok, false)
	ok, err = s.TryLock(ctx, "rollup", "r2", ttl, at(16*time.Second)) // expired: passes on
	must(t, err)
	wantEqual(t, ok, true)
	ok, err = s.RenewLock(ctx, "rollup", "r1", ttl, at(17*time.Second))
	must(t, err)
	wantEqual(t, ok, false)
	must(t, s.ReleaseLock(ctx, "rollup", "r1")) // not its own: no-op
	ok, err = s.TryLock(ctx, "rollup", "r3", ttl, at(17*time.Second))
	must(t, err)
	wantEqual(t, ok, false)
	must(t, s.ReleaseLock(ctx, "rollup", "r2"))
	ok, err = s.TryLock(ctx, "rollup", "r3", ttl, at(17*time.Second))
	must(t, err)
	wantEqual(t, ok, true)
}

// TestLocksTwoOpeners: two stores on one database file (two relays) race
// for one lock at the same instant many times: exactly one wins each
// round.
func TestLocksTwoOpeners(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "relay.db")
		a, err := OpenSQLite(path)
		must(t, err)
		defer a.Close()
		b, err := OpenSQLite(path)
		must(t, err)
		defer b.Close()
		lockRace(t, &a.sqlStore, &b.sqlStore)
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := testpg.DSN(t)
		a := openPostgresDSN(t, dsn)
		b := openPostgresDSN(t, dsn)
		lockRace(t, &a.sqlStore, &b.sqlStore)
	})
}

// lockRace races a and b for one lock, round after round.
func lockRace(t *testing.T, a, b *sqlStore) {
	ctx := context.Background()
	for i := range 50 {
		now := at(time.Duration(i) * time.Minute) // each round after the last expired
		res := make(chan bool, 2)
		for _, st := range []struct {
			s    *sqlStore
			name string
		}{{a, "r1"}, {b, "r2"}} {
			go func() {
				ok, err := st.s.TryLock(ctx, "janitor", st.name, time.Second, now)
				if err != nil {
					t.Error(err)
				}
				res <- ok
			}()
		}
		if n := btoi(<-res) + btoi(<-res); n != 1 {
			t.Fatalf("round %d: %d holders, want 1", i, n)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
