package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

const day = 24 * time.Hour

func cliSession(id string, sites ...string) CLISession {
	return CLISession{
		ID: id, Hash: []byte("hash-" + id), TenantID: "t1", SiteIDs: sites, Label: "laptop " + id,
		CreatedAt: t0, ExpiresAt: at(30 * day), HardCapAt: at(180 * day),
	}
}

func TestCLISessions(t *testing.T) { forEachStore(t, testCLISessions) }

func testCLISessions(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	seed(t, s)
	must(t, s.CreateUser(ctx, User{ID: "u1", TenantID: "t1", Email: "a@x", PasswordHash: "x", CreatedAt: t0}))

	a := cliSession("c1", "s1", "s2")
	a.UserID = "u1"
	must(t, s.CreateCLISession(ctx, a))
	b := cliSession("c2", "s2") // admin-minted: no user
	b.CreatedAt = at(time.Minute)
	must(t, s.CreateCLISession(ctx, b))

	got, err := s.GetCLISession(ctx, "c1")
	must(t, err)
	wantEqual(t, got, a)
	got, err = s.GetCLISessionByHash(ctx, []byte("hash-c2"))
	must(t, err)
	wantEqual(t, got, b)

	for _, tc := range []struct {
		name string
		c    CLISession
		want error
	}{
		{"duplicate id", cliSession("c1", "s1"), ErrConflict},
		{"duplicate hash", func() CLISession { c := cliSession("c3", "s1"); c.Hash = a.Hash; return c }(), ErrConflict},
		{"unknown tenant", func() CLISession { c := cliSession("c4", "s1"); c.TenantID = "t9"; return c }(), ErrNotFound},
		{"unknown user", func() CLISession { c := cliSession("c5", "s1"); c.UserID = "u9"; return c }(), ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) { wantErr(t, s.CreateCLISession(ctx, tc.c), tc.want) })
	}
	_, err = s.GetCLISession(ctx, "c9")
	wantErr(t, err, ErrNotFound)
	_, err = s.GetCLISessionByHash(ctx, []byte("nope"))
	wantErr(t, err, ErrNotFound)

	ids := func(cs []CLISession) []string {
		out := []string{}
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return out
	}
	list, err := s.ListCLISessions(ctx, "s2", t0)
	must(t, err)
	wantEqual(t, ids(list), []string{"c2", "c1"}) // newest first
	list, err = s.ListCLISessions(ctx, "s1", t0)
	must(t, err)
	wantEqual(t, ids(list), []string{"c1"})
	list, err = s.ListCLISessions(ctx, "s3", t0)
	must(t, err)
	wantEqual(t, ids(list), []string{})
	// Expired sessions are not active.
	list, err = s.ListCLISessions(ctx, "s2", at(30*day))
	must(t, err)
	wantEqual(t, ids(list), []string{})

	must(t, s.RevokeCLISession(ctx, "c2", at(time.Hour)))
	must(t, s.RevokeCLISession(ctx, "c2", at(2*time.Hour)))
	got, err = s.GetCLISession(ctx, "c2")
	must(t, err)
	if got.RevokedAt == nil || !got.RevokedAt.Equal(at(time.Hour)) {
		t.Errorf("RevokedAt = %v, want the first revocation %v", got.RevokedAt, at(time.Hour))
	}
	wantErr(t, s.RevokeCLISession(ctx, "c9", t0), ErrNotFound)
	list, err = s.ListCLISessions(ctx, "s2", t0)
	must(t, err)
	wantEqual(t, ids(list), []string{"c1"})
}

func TestTouchCLISession(t *testing.T) { forEachStore(t, testTouchCLISession) }

func testTouchCLISession(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	seed(t, s)
	must(t, s.CreateCLISession(ctx, cliSession("c1", "s1")))

	// A use slides the expiry and records the time.
	c, err := s.TouchCLISession(ctx, "c1", at(10*day), at(40*day))
	must(t, err)
	if !c.ExpiresAt.Equal(at(40*day)) || c.LastUsedAt == nil || !c.LastUsedAt.Equal(at(10*day)) {
		t.Fatalf("after touch: expires %v last used %v", c.ExpiresAt, c.LastUsedAt)
	}
	stored, err := s.GetCLISession(ctx, "c1")
	must(t, err)
	wantEqual(t, stored, c)

	// Never backwards.
	c, err = s.TouchCLISession(ctx, "c1", at(11*day), at(20*day))
	must(t, err)
	if !c.ExpiresAt.Equal(at(40 * day)) {
		t.Fatalf("expiry moved back to %v", c.ExpiresAt)
	}
	// Never past the hard cap.
	c, err = s.TouchCLISession(ctx, "c1", at(39*day), at(400*day))
	must(t, err)
	if !c.ExpiresAt.Equal(at(180 * day)) {
		t.Fatalf("expiry %v, want the hard cap %v", c.ExpiresAt, at(180*day))
	}
	// At the cap it is over, even though a touch would slide it.
	_, err = s.TouchCLISession(ctx, "c1", at(180*day), at(210*day))
	wantErr(t, err, ErrExpired)

	// An expired session is not revived by a late use.
	must(t, s.CreateCLISession(ctx, cliSession("c2", "s1")))
	_, err = s.TouchCLISession(ctx, "c2", at(30*day), at(60*day))
	wantErr(t, err, ErrExpired)
	stored, err = s.GetCLISession(ctx, "c2")
	must(t, err)
	if !stored.ExpiresAt.Equal(at(30*day)) || stored.LastUsedAt != nil {
		t.Fatalf("a refused touch changed the session: %+v", stored)
	}

	must(t, s.CreateCLISession(ctx, cliSession("c3", "s1")))
	must(t, s.RevokeCLISession(ctx, "c3", t0))
	_, err = s.TouchCLISession(ctx, "c3", at(time.Hour), at(30*day))
	wantErr(t, err, ErrRevoked)
	_, err = s.TouchCLISession(ctx, "c9", t0, at(30*day))
	wantErr(t, err, ErrNotFound)
}

func TestResolveLoopback(t *testing.T) { forEachStore(t, testResolveLoopback) }

func testResolveLoopback(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	seed(t, s)
	d, _, err := s.CreateDevice(ctx, Device{ID: "d1", SiteID: "s2", Host: "10.0.0.9", Ports: []int{80, 554}, CreatedAt: t0},
		[]Handle{{Handle: "h-80", Port: 80, CreatedAt: t0}, {Handle: "h-554", Port: 554, CreatedAt: t0}})
	must(t, err)
	if d.LoopbackIP != "127.0.0.2" {
		t.Fatalf("loopback %s", d.LoopbackIP)
	}
	r, err := s.ResolveLoopback(ctx, "127.0.0.2", 554, t0)
	must(t, err)
	wantEqual(t, r, Route{Handle: "h-554", TenantID: "t1", SiteID: "s2", DeviceID: "d1", Host: "10.0.0.9", Port: 554})

	// A newer handle for the same port wins; an expired one is skipped.
	must(t, s.InsertHandle(ctx, Handle{Handle: "h-80-new", TenantID: "t1", DeviceID: "d1", Port: 80, CreatedAt: at(time.Hour)}))
	must(t, s.InsertHandle(ctx, Handle{Handle: "h-80-dead", TenantID: "t1", DeviceID: "d1", Port: 80, ExpiresAt: ptr(at(time.Hour)), CreatedAt: at(2 * time.Hour)}))
	r, err = s.ResolveLoopback(ctx, "127.0.0.2", 80, at(3*time.Hour))
	must(t, err)
	if r.Handle != "h-80-new" {
		t.Fatalf("resolved %s, want h-80-new", r.Handle)
	}

	for _, tc := range []struct {
		ip   string
		port int
	}{
		{"127.0.0.2", 81}, {"127.0.0.3", 80}, {"127.0.0.1", 80}, {"10.0.0.9", 80},
		{"::1", 80}, {"garbage", 80}, {"127.0.0.02", 80}, {"", 0},
	} {
		if _, err := s.ResolveLoopback(ctx, tc.ip, tc.port, t0); !errors.Is(err, ErrNotFound) {
			t.Errorf("ResolveLoopback(%q, %d) = %v, want not found", tc.ip, tc.port, err)
		}
	}

	// A revoked handle and a deleted device no longer resolve.
	must(t, s.RevokeHandle(ctx, "h-554", t0))
	_, err = s.ResolveLoopback(ctx, "127.0.0.2", 554, t0)
	wantErr(t, err, ErrNotFound)
	_, err = s.DeleteDevice(ctx, "d1", t0)
	must(t, err)
	_, err = s.ResolveLoopback(ctx, "127.0.0.2", 80, t0)
	wantErr(t, err, ErrNotFound)
}

func TestLoopbackOffsetInvertsLoopbackIP(t *testing.T) {
	for _, n := range []int64{firstLoopback, 255, 256, 65535, 65536, lastLoopback} {
		got, ok := loopbackOffset(loopbackIP(n))
		if !ok || got != n {
			t.Errorf("loopbackOffset(%s) = %d, %v; want %d", loopbackIP(n), got, ok, n)
		}
	}
	for _, ip := range []string{"127.0.0.0", "127.0.0.1", "127.255.255.255", "128.0.0.2", "1.2.3.4"} {
		if n, ok := loopbackOffset(ip); ok {
			t.Errorf("loopbackOffset(%s) = %d, want refused", ip, n)
		}
	}
}
