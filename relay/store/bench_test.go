package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/nanodems/connector/internal/testpg"
)

// The hot calls of the store on each backend: what a tunnel open costs
// when the relay's caches miss (a handle's route, an API token), and what
// every audited action writes. docs/perf-store.md has the figures.

func benchStores(b *testing.B, bench func(b *testing.B, s *sqlStore)) {
	b.Run("sqlite", func(b *testing.B) {
		s, err := OpenSQLite(filepath.Join(b.TempDir(), "relay.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		bench(b, &s.sqlStore)
	})
	b.Run("postgres", func(b *testing.B) {
		s, err := OpenPostgres(context.Background(), testpg.DSN(b), PostgresOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		bench(b, &s.sqlStore)
	})
}

// benchSeed stores a tenant, a site, a device with 1,000 handles, a user
// and 1,000 API tokens, so lookups walk a real index.
func benchSeed(b *testing.B, s *sqlStore) {
	ctx := context.Background()
	if err := s.CreateTenant(ctx, Tenant{ID: "t1", Name: "T", CreatedAt: t0}); err != nil {
		b.Fatal(err)
	}
	if err := s.CreateSite(ctx, Site{ID: "s1", TenantID: "t1", Name: "S", CreatedAt: t0}); err != nil {
		b.Fatal(err)
	}
	hs := make([]Handle, 1000)
	for i := range hs {
		hs[i] = Handle{Handle: fmt.Sprintf("h_%04d", i), Port: 80, CreatedAt: t0}
	}
	if _, _, err := s.CreateDevice(ctx, Device{ID: "d1", SiteID: "s1", Host: "10.0.0.1", Ports: []int{80}, CreatedAt: t0}, hs); err != nil {
		b.Fatal(err)
	}
	if err := s.CreateUser(ctx, User{ID: "u1", TenantID: "t1", Email: "u@x", PasswordHash: "h", CreatedAt: t0}); err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		err := s.CreateAPIToken(ctx, APIToken{ID: fmt.Sprintf("tok_%04d", i), UserID: "u1", TenantID: "t1", Hash: []byte(fmt.Sprintf("hash-%04d", i)), CreatedAt: t0})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkResolveHandle(b *testing.B) {
	benchStores(b, func(b *testing.B, s *sqlStore) {
		benchSeed(b, s)
		ctx := context.Background()
		for i := 0; b.Loop(); i++ {
			if _, err := s.ResolveHandle(ctx, fmt.Sprintf("h_%04d", i%1000)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkGetAPITokenByHash(b *testing.B) {
	benchStores(b, func(b *testing.B, s *sqlStore) {
		benchSeed(b, s)
		ctx := context.Background()
		for i := 0; b.Loop(); i++ {
			if _, err := s.GetAPITokenByHash(ctx, []byte(fmt.Sprintf("hash-%04d", i%1000))); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkAppendAudit(b *testing.B) {
	benchStores(b, func(b *testing.B, s *sqlStore) {
		ctx := context.Background()
		for b.Loop() {
			if err := s.AppendAudit(ctx, AuditEvent{At: t0, TenantID: "t1", Actor: "relay", Action: "bench", Target: "x"}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAppendAuditParallel is AppendAudit from 8 goroutines at once,
// as busy relays write: SQLite queues writers, PostgreSQL runs them side
// by side.
func BenchmarkAppendAuditParallel(b *testing.B) {
	benchStores(b, func(b *testing.B, s *sqlStore) {
		ctx := context.Background()
		b.SetParallelism(4) // × GOMAXPROCS (2 here): 8 writers
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := s.AppendAudit(ctx, AuditEvent{At: t0, TenantID: "t1", Actor: "relay", Action: "bench", Target: "x"}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
