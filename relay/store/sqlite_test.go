package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"
)

// t0 is a microsecond-exact base time, so stored values compare equal.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }
func ptr[T any](v T) *T            { return &v }

// seed creates tenants t1 and t2, sites s1 and s2 of t1 and s3 of t2.
func seed(t *testing.T, s *sqlStore) {
	t.Helper()
	ctx := context.Background()
	for _, id := range []string{"t1", "t2"} {
		must(t, s.CreateTenant(ctx, Tenant{ID: id, Name: "Tenant " + id, CreatedAt: t0}))
	}
	for _, site := range []Site{
		{ID: "s1", TenantID: "t1", Name: "Plant A", CreatedAt: t0},
		{ID: "s2", TenantID: "t1", Name: "Plant B", CreatedAt: t0},
		{ID: "s3", TenantID: "t2", Name: "Depot", CreatedAt: t0},
	} {
		must(t, s.CreateSite(ctx, site))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("err = %v, want %v", err, target)
	}
}

func wantEqual[T any](t *testing.T, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

func TestOpenPragmas(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	for _, tc := range []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"busy_timeout", "5000"},
	} {
		var got string
		must(t, s.db.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got))
		if got != tc.want {
			t.Errorf("PRAGMA %s = %q, want %q", tc.pragma, got, tc.want)
		}
	}
}

func TestOpenPathWithURIChars(t *testing.T) {
	path := filepath.Join(t.TempDir(), "odd?name#1%.db")
	s, err := OpenSQLite(path)
	must(t, err)
	must(t, s.SetSetting(context.Background(), "k", "v"))
	must(t, s.Close())
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "odd*")); len(m) == 0 {
		t.Fatalf("no database file at %s", path)
	}
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "relay.db")
	migrationsApplied := func(s *SQLite) map[string]int64 {
		rows, err := s.db.QueryContext(ctx, `SELECT version, applied_at FROM schema_migrations`)
		must(t, err)
		defer rows.Close()
		m := map[string]int64{}
		for rows.Next() {
			var v string
			var at int64
			must(t, rows.Scan(&v, &at))
			m[v] = at
		}
		must(t, rows.Err())
		return m
	}

	s, err := OpenSQLite(path)
	must(t, err)
	seed(t, &s.sqlStore)
	d, _, err := s.CreateDevice(ctx, Device{ID: "d1", SiteID: "s1", Host: "10.0.0.5", Ports: []int{80}, CreatedAt: t0}, nil)
	must(t, err)
	first := migrationsApplied(s)
	names, err := fs.Glob(migrations, "migrations/*.sql")
	must(t, err)
	if len(first) != len(names) || first["0001_init"] == 0 {
		t.Fatalf("schema_migrations = %v, want one row per file in %v", first, names)
	}
	must(t, s.Close())

	s, err = OpenSQLite(path)
	must(t, err)
	defer s.Close()
	wantEqual(t, migrationsApplied(s), first)
	got, err := s.GetDevice(ctx, "d1")
	must(t, err)
	wantEqual(t, got, d)
	site, err := s.GetSite(ctx, "s1")
	must(t, err)
	if site.AllowlistVersion != 1 {
		t.Errorf("allowlist version after reopen = %d, want 1", site.AllowlistVersion)
	}
	// The loopback counter survives too.
	d2, _, err := s.CreateDevice(ctx, Device{ID: "d2", SiteID: "s1", Host: "10.0.0.6", CreatedAt: t0}, nil)
	must(t, err)
	if d2.LoopbackIP != "127.0.0.3" {
		t.Errorf("LoopbackIP after reopen = %s, want 127.0.0.3", d2.LoopbackIP)
	}
}

func TestTimeRoundTrip(t *testing.T) { forEachStore(t, testTimeRoundTrip) }

func testTimeRoundTrip(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	in := time.Date(2025, 1, 2, 3, 4, 5, 123456789, time.FixedZone("CET", 3600))
	must(t, s.CreateTenant(ctx, Tenant{ID: "t1", Name: "x", CreatedAt: in}))
	got, err := s.GetTenant(ctx, "t1")
	must(t, err)
	want := in.UTC().Truncate(time.Microsecond)
	if !got.CreatedAt.Equal(want) || got.CreatedAt.Location() != time.UTC {
		t.Fatalf("CreatedAt = %v, want %v in UTC", got.CreatedAt, want)
	}
}

func TestSettings(t *testing.T) { forEachStore(t, testSettings) }

func testSettings(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	_, err := s.GetSetting(ctx, "admin_key_hash")
	wantErr(t, err, ErrNotFound)
	must(t, s.SetSetting(ctx, "admin_key_hash", "one"))
	must(t, s.SetSetting(ctx, "other", "x"))
	must(t, s.SetSetting(ctx, "admin_key_hash", "two"))
	for key, want := range map[string]string{"admin_key_hash": "two", "other": "x"} {
		got, err := s.GetSetting(ctx, key)
		must(t, err)
		if got != want {
			t.Errorf("GetSetting(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestTenants(t *testing.T) { forEachStore(t, testTenants) }

func testTenants(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	want := Tenant{ID: "t1", Name: "Acme", CreatedAt: t0}
	must(t, s.CreateTenant(ctx, want))
	got, err := s.GetTenant(ctx, "t1")
	must(t, err)
	wantEqual(t, got, want)
	wantErr(t, s.CreateTenant(ctx, Tenant{ID: "t1", Name: "again"}), ErrConflict)
	_, err = s.GetTenant(ctx, "nope")
	wantErr(t, err, ErrNotFound)
}

func TestUsers(t *testing.T) { forEachStore(t, testUsers) }

func testUsers(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	seed(t, s)
	alice := User{ID: "u1", TenantID: "t1", Email: "alice@example.com", PasswordHash: "$argon2id$v=19$a", CreatedAt: t0}
	root := User{ID: "u2", Email: "root@example.com", PasswordHash: "$argon2id$v=19$b", Superadmin: true, CreatedAt: at(time.Second)}
	must(t, s.CreateUser(ctx, alice))
	must(t, s.CreateUser(ctx, root))

	for _, want := range []User{alice, root} {
		got, err := s.GetUser(ctx, want.ID)
		must(t, err)
		wantEqual(t, got, want)
		got, err = s.GetUserByEmail(ctx, want.Email)
		must(t, err)
		wantEqual(t, got, want)
	}

	for _, tc := range []struct {
		name string
		u    User
		want error
	}{
		{"duplicate id", User{ID: "u1", TenantID: "t1", Email: "new@example.com"}, ErrConflict},
		{"duplicate email", User{ID: "u3", TenantID: "t2", Email: "alice@example.com"}, ErrConflict},
		{"unknown tenant", User{ID: "u4", TenantID: "t9", Email: "x@example.com"}, ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) { wantErr(t, s.CreateUser(ctx, tc.u), tc.want) })
	}
	_, err := s.GetUser(ctx, "u9")
	wantErr(t, err, ErrNotFound)
	_, err = s.GetUserByEmail(ctx, "nobody@example.com")
	wantErr(t, err, ErrNotFound)
}

func TestAPITokens(t *testing.T) { forEachStore(t, testAPITokens) }

func testAPITokens(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	seed(t, s)
	must(t, s.CreateUser(ctx, User{ID: "u1", TenantID: "t1", Email: "a@example.com", CreatedAt: t0}))
	tok := APIToken{ID: "k1", UserID: "u1", TenantID: "t1", Hash: []byte{1, 2, 3}, CreatedAt: t0}
	must(t, s.CreateAPIToken(ctx, tok))

	got, err := s.GetAPITokenByHash(ctx, []byte{1, 2, 3})
	must(t, err)
	wantEqual(t, got, tok)
	_, err = s.GetAPITokenByHash(ctx, []byte{9})
	wantErr(t, err, ErrNotFound)
	wantErr(t, s.CreateAPIToken(ctx, APIToken{ID: "k1", UserID: "u1", Hash: []byte{4}}), ErrConflict)
	wantErr(t, s.CreateAPIToken(ctx, APIToken{ID: "k2", UserID: "u1", Hash: []byte{1, 2, 3}}), ErrConflict)
	wantErr(t, s.CreateAPIToken(ctx, APIToken{ID: "k3", UserID: "u9", Hash: []byte{5}}), ErrNotFound)

	must(t, s.RevokeAPIToken(ctx, "k1", at(time.Hour)))
	must(t, s.RevokeAPIToken(ctx, "k1", at(2*time.Hour))) // keeps the first time
	got, err = s.GetAPITokenByHash(ctx, []byte{1, 2, 3})
	must(t, err)
	tok.RevokedAt = ptr(at(time.Hour))
	wantEqual(t, got, tok)
	wantErr(t, s.RevokeAPIToken(ctx, "k9", t0), ErrNotFound)
}

func TestSites(t *testing.T) { forEachStore(t, testSites) }

func testSites(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	seed(t, s)
	got, err := s.GetSite(ctx, "s3")
	must(t, err)
	wantEqual(t, got, Site{ID: "s3", TenantID: "t2", Name: "Depot", CreatedAt: t0})
	wantErr(t, s.CreateSite(ctx, Site{ID: "s1", TenantID: "t1"}), ErrConflict)
	wantErr(t, s.CreateSite(ctx, Site{ID: "s9", TenantID: "t9"}), ErrNotFound)
	_, err = s.GetSite(ctx, "s9")
	wantErr(t, err, ErrNotFound)
}

func TestUseEnrollmentToken(t *testing.T) { forEachStore(t, testUseEnrollmentToken) }

func testUseEnrollmentToken(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	seed(t, s)
	expires := at(time.Hour)
	for _, tok := range []EnrollmentToken{
		{Hash: []byte("fresh"), SiteID: "s1", ExpiresAt: expires, CreatedAt: t0},
		{Hash: []byte("used"), SiteID: "s1", ExpiresAt: expires, UsedAt: ptr(at(time.Minute)), CreatedAt: t0},
		{Hash: []byte("used-expired"), SiteID: "s1", ExpiresAt: t0, UsedAt: ptr(t0), CreatedAt: t0},
		{Hash: []byte("expired"), SiteID: "s2", ExpiresAt: expires, CreatedAt: t0},
	} {
		must(t, s.CreateEnrollmentToken(ctx, tok))
	}
	wantErr(t, s.CreateEnrollmentToken(ctx, EnrollmentToken{Hash: []byte("fresh"), SiteID: "s1"}), ErrConflict)
	wantErr(t, s.CreateEnrollmentToken(ctx, EnrollmentToken{Hash: []byte("x"), SiteID: "s9"}), ErrNotFound)

	now := at(30 * time.Minute)
	for _, tc := range []struct {
		name string
		hash string
		now  time.Time
		want error
	}{
		{"fresh", "fresh", now, nil},
		{"second use", "fresh", now, ErrUsed},
		{"used", "used", now, ErrUsed},
		{"used wins over expired", "used-expired", now, ErrUsed},
		{"at expiry", "expired", expires, ErrExpired},
		{"after expiry", "expired", expires.Add(time.Microsecond), ErrExpired},
		{"unknown", "nope", now, ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.UseEnrollmentToken(ctx, []byte(tc.hash), tc.now)
			wantErr(t, err, tc.want)
			if tc.want != nil {
				return
			}
			wantEqual(t, got, EnrollmentToken{Hash: []byte(tc.hash), SiteID: "s1", ExpiresAt: expires, UsedAt: &now, CreatedAt: t0})
		})
	}
	// A failed use leaves the token untouched: it still expires, not "used".
	_, err := s.UseEnrollmentToken(ctx, []byte("expired"), expires)
	wantErr(t, err, ErrExpired)
}

func TestUseEnrollmentTokenConcurrent(t *testing.T) {
	forEachStore(t, testUseEnrollmentTokenConcurrent)
}

func testUseEnrollmentTokenConcurrent(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	seed(t, s)
	must(t, s.CreateEnrollmentToken(ctx, EnrollmentToken{Hash: []byte("once"), SiteID: "s1", ExpiresAt: at(time.Hour), CreatedAt: t0}))

	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = s.UseEnrollmentToken(ctx, []byte("once"), t0) })
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, ErrUsed):
			t.Errorf("unexpected error: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d concurrent uses succeeded, want 1", wins, n)
	}
}

func TestAgents(t *testing.T) { forEachStore(t, testAgents) }

func testAgents(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	seed(t, s)
	// Created out of order: the list is by creation time, then id.
	agents := []Agent{
		{ID: "a-late", SiteID: "s1", CertSerial: "03", CreatedAt: at(time.Hour)},
		{ID: "a-2", SiteID: "s1", CertSerial: "02", CreatedAt: t0},
		{ID: "a-1", SiteID: "s1", CertSerial: "01", CreatedAt: t0},
		{ID: "a-other", SiteID: "s2", CertSerial: "04", CreatedAt: t0},
	}
	for _, a := range agents {
		must(t, s.CreateAgent(ctx, a))
	}
	wantErr(t, s.CreateAgent(ctx, Agent{ID: "a-1", SiteID: "s1"}), ErrConflict)
	wantErr(t, s.CreateAgent(ctx, Agent{ID: "a-x", SiteID: "s9"}), ErrNotFound)

	list, err := s.ListAgents(ctx, "s1")
	must(t, err)
	wantEqual(t, list, []Agent{agents[2], agents[1], agents[0]})

	must(t, s.RevokeAgent(ctx, "a-1", at(time.Minute)))
	must(t, s.RevokeAgent(ctx, "a-1", at(time.Hour)))
	got, err := s.GetAgent(ctx, "a-1")
	must(t, err)
	want := agents[2]
	want.RevokedAt = ptr(at(time.Minute))
	wantEqual(t, got, want)

	wantErr(t, s.RevokeAgent(ctx, "a-9", t0), ErrNotFound)
	_, err = s.GetAgent(ctx, "a-9")
	wantErr(t, err, ErrNotFound)
	list, err = s.ListAgents(ctx, "s3")
	must(t, err)
	if len(list) != 0 {
		t.Errorf("ListAgents(s3) = %v, want none", list)
	}
}

func TestCreateDevice(t *testing.T) { forEachStore(t, testCreateDevice) }

func testCreateDevice(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	seed(t, s)
	in := Device{
		ID: "d1", SiteID: "s1", Host: "192.168.1.20", Ports: []int{8443, 80, 554},
		Label: "Line 3 PLC", Manufacturer: "Siemens", Model: "S7-1500", Notes: "rack 2",
		CreatedAt: t0,
	}
	handles := []Handle{
		{Handle: "h-8443", Port: 8443, CreatedAt: t0},
		{Handle: "h-80", Port: 80, ExpiresAt: ptr(at(24 * time.Hour)), CreatedAt: t0},
	}
	d, v, err := s.CreateDevice(ctx, in, handles)
	must(t, err)
	want := in
	want.LoopbackIP = "127.0.0.2"
	wantEqual(t, d, want)
	if v != 1 {
		t.Errorf("version = %d, want 1", v)
	}
	got, err := s.GetDevice(ctx, "d1")
	must(t, err)
	wantEqual(t, got, want)

	hs, err := s.ListHandles(ctx, "d1")
	must(t, err)
	wantEqual(t, hs, []Handle{
		{Handle: "h-80", TenantID: "t1", DeviceID: "d1", Port: 80, ExpiresAt: ptr(at(24 * time.Hour)), CreatedAt: t0},
		{Handle: "h-8443", TenantID: "t1", DeviceID: "d1", Port: 8443, CreatedAt: t0},
	})

	// Failures roll back: no version bump, no loopback address consumed.
	for _, tc := range []struct {
		name    string
		d       Device
		handles []Handle
		want    error
	}{
		{"duplicate id", Device{ID: "d1", SiteID: "s1"}, nil, ErrConflict},
		{"unknown site", Device{ID: "d2", SiteID: "s9"}, nil, ErrNotFound},
		{"duplicate handle", Device{ID: "d3", SiteID: "s1"}, []Handle{{Handle: "h-80", Port: 80}}, ErrConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := s.CreateDevice(ctx, tc.d, tc.handles)
			wantErr(t, err, tc.want)
		})
	}
	_, _, err = s.CreateDevice(ctx, Device{ID: "d4", SiteID: "s1"}, []Handle{{Handle: "h-x", TenantID: "t2", Port: 1}})
	if err == nil {
		t.Fatal("CreateDevice accepted a handle of another tenant")
	}
	site, err := s.GetSite(ctx, "s1")
	must(t, err)
	if site.AllowlistVersion != 1 {
		t.Errorf("allowlist version after failed creates = %d, want 1", site.AllowlistVersion)
	}
	if _, err := s.GetDevice(ctx, "d4"); !errors.Is(err, ErrNotFound) {
		t.Errorf("device of failed create exists: %v", err)
	}

	// No ports reads back as an empty list.
	d5, v, err := s.CreateDevice(ctx, Device{ID: "d5", SiteID: "s1", Host: "h", CreatedAt: t0}, nil)
	must(t, err)
	if d5.LoopbackIP != "127.0.0.3" || v != 2 {
		t.Errorf("second device: LoopbackIP %s version %d, want 127.0.0.3 and 2", d5.LoopbackIP, v)
	}
	got, err = s.GetDevice(ctx, "d5")
	must(t, err)
	if got.Ports == nil || len(got.Ports) != 0 {
		t.Errorf("Ports = %#v, want empty list", got.Ports)
	}
}

func TestLoopbackAllocation(t *testing.T) { forEachStore(t, testLoopbackAllocation) }

func testLoopbackAllocation(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	seed(t, s)
	create := func(id, site string) Device {
		t.Helper()
		d, _, err := s.CreateDevice(ctx, Device{ID: id, SiteID: site, Host: "10.0.0.1", CreatedAt: t0}, nil)
		must(t, err)
		return d
	}
	// One sequence across sites and tenants.
	for i, tc := range []struct{ id, site string }{{"d1", "s1"}, {"d2", "s2"}, {"d3", "s3"}, {"d4", "s1"}} {
		want := fmt.Sprintf("127.0.0.%d", i+2)
		if d := create(tc.id, tc.site); d.LoopbackIP != want {
			t.Errorf("%s: LoopbackIP = %s, want %s", tc.id, d.LoopbackIP, want)
		}
	}
	// Deleting the newest device does not free its address.
	_, err := s.DeleteDevice(ctx, "d4", t0)
	must(t, err)
	if d := create("d5", "s3"); d.LoopbackIP != "127.0.0.6" {
		t.Errorf("after delete: LoopbackIP = %s, want 127.0.0.6", d.LoopbackIP)
	}
}

func TestLoopbackIP(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{firstLoopback, "127.0.0.2"},
		{255, "127.0.0.255"},
		{256, "127.0.1.0"},
		{257, "127.0.1.1"},
		{1<<16 - 1, "127.0.255.255"},
		{1 << 16, "127.1.0.0"},
		{lastLoopback, "127.255.255.254"},
	} {
		if got := loopbackIP(tc.n); got != tc.want {
			t.Errorf("loopbackIP(%d) = %s, want %s", tc.n, got, tc.want)
		}
	}
}

func TestLoopbackRolloverAndExhaustion(t *testing.T) {
	forEachStore(t, testLoopbackRolloverAndExhaustion)
}

func testLoopbackRolloverAndExhaustion(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	seed(t, s)
	setCounter := func(v int64) {
		t.Helper()
		_, err := s.db.ExecContext(ctx, `UPDATE counters SET value = ? WHERE name = 'loopback'`, v)
		must(t, err)
	}
	setCounter(254)
	for _, want := range []string{"127.0.0.255", "127.0.1.0"} {
		id := "d-" + want
		d, _, err := s.CreateDevice(ctx, Device{ID: id, SiteID: "s1", CreatedAt: t0}, nil)
		must(t, err)
		if d.LoopbackIP != want {
			t.Errorf("LoopbackIP = %s, want %s", d.LoopbackIP, want)
		}
	}

	setCounter(lastLoopback - 1)
	d, v, err := s.CreateDevice(ctx, Device{ID: "last", SiteID: "s1", CreatedAt: t0}, nil)
	must(t, err)
	if d.LoopbackIP != "127.255.255.254" {
		t.Errorf("LoopbackIP = %s, want 127.255.255.254", d.LoopbackIP)
	}
	_, _, err = s.CreateDevice(ctx, Device{ID: "one-too-many", SiteID: "s1", CreatedAt: t0}, nil)
	wantErr(t, err, errLoopbackExhausted)
	site, err := s.GetSite(ctx, "s1")
	must(t, err)
	if site.AllowlistVersion != v {
		t.Errorf("allowlist version = %d after failed create, want %d", site.AllowlistVersion, v)
	}
}

func TestUpdateDevice(t *testing.T) { forEachStore(t, testUpdateDevice) }

func testUpdateDevice(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	seed(t, s)
	orig, _, err := s.CreateDevice(ctx, Device{ID: "d1", SiteID: "s1", Host: "10.0.0.5", Ports: []int{80, 443, 554}, Label: "cam", CreatedAt: t0},
		[]Handle{
			{Handle: "h80", Port: 80, CreatedAt: t0},
			{Handle: "h443", Port: 443, CreatedAt: t0},
			{Handle: "h554", Port: 554, CreatedAt: t0},
			{Handle: "h554-old", Port: 554, RevokedAt: ptr(t0), CreatedAt: t0},
		})
	must(t, err)
	// A device on another site of the same tenant is untouched.
	_, _, err = s.CreateDevice(ctx, Device{ID: "other", SiteID: "s2", Ports: []int{80}, CreatedAt: t0},
		[]Handle{{Handle: "other80", Port: 80, CreatedAt: t0}})
	must(t, err)

	now := at(time.Hour)
	upd := Device{
		ID: "d1", SiteID: "ignored", Host: "10.0.0.6", Ports: []int{8080, 443},
		Label: "camera", Manufacturer: "Axis", Model: "P1465", Notes: "moved",
		LoopbackIP: "ignored", CreatedAt: now,
	}
	v, err := s.UpdateDevice(ctx, upd, []Handle{{Handle: "h8080", Port: 8080, CreatedAt: now}}, now)
	must(t, err)
	if v != 2 {
		t.Errorf("version = %d, want 2", v)
	}

	got, err := s.GetDevice(ctx, "d1")
	must(t, err)
	want := upd
	want.SiteID, want.LoopbackIP, want.CreatedAt = orig.SiteID, orig.LoopbackIP, orig.CreatedAt
	wantEqual(t, got, want)

	live, err := s.ListHandles(ctx, "d1")
	must(t, err)
	wantEqual(t, live, []Handle{
		{Handle: "h443", TenantID: "t1", DeviceID: "d1", Port: 443, CreatedAt: t0},
		{Handle: "h8080", TenantID: "t1", DeviceID: "d1", Port: 8080, CreatedAt: now},
	})
	for h, revoked := range map[string]*time.Time{
		"h80": &now, "h554": &now, "h554-old": ptr(t0), "h443": nil, "h8080": nil, "other80": nil,
	} {
		r, err := s.ResolveHandle(ctx, h)
		must(t, err)
		if !reflect.DeepEqual(r.RevokedAt, revoked) {
			t.Errorf("%s: RevokedAt = %v, want %v", h, r.RevokedAt, revoked)
		}
	}

	// Dropping every port revokes every handle.
	v, err = s.UpdateDevice(ctx, Device{ID: "d1", Host: "10.0.0.6"}, nil, now)
	must(t, err)
	if v != 3 {
		t.Errorf("version = %d, want 3", v)
	}
	live, err = s.ListHandles(ctx, "d1")
	must(t, err)
	if len(live) != 0 {
		t.Errorf("live handles = %v, want none", live)
	}

	_, err = s.UpdateDevice(ctx, Device{ID: "d9"}, nil, now)
	wantErr(t, err, ErrNotFound)
	_, err = s.DeleteDevice(ctx, "d1", now)
	must(t, err)
	_, err = s.UpdateDevice(ctx, Device{ID: "d1"}, nil, now)
	wantErr(t, err, ErrNotFound)
}

func TestDeleteDevice(t *testing.T) { forEachStore(t, testDeleteDevice) }

func testDeleteDevice(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	seed(t, s)
	_, _, err := s.CreateDevice(ctx, Device{ID: "d1", SiteID: "s3", Host: "10.1.1.1", Ports: []int{22, 80}, CreatedAt: t0},
		[]Handle{
			{Handle: "h22", Port: 22, AgentID: "agent-1", CreatedAt: t0},
			{Handle: "h80", Port: 80, RevokedAt: ptr(t0), CreatedAt: t0},
		})
	must(t, err)
	keep, _, err := s.CreateDevice(ctx, Device{ID: "d2", SiteID: "s3", Host: "10.1.1.2", Ports: []int{80}, CreatedAt: at(time.Second)}, nil)
	must(t, err)

	now := at(time.Hour)
	v, err := s.DeleteDevice(ctx, "d1", now)
	must(t, err)
	if v != 3 {
		t.Errorf("version = %d, want 3", v)
	}
	_, err = s.GetDevice(ctx, "d1")
	wantErr(t, err, ErrNotFound)
	list, err := s.ListDevices(ctx, "s3")
	must(t, err)
	wantEqual(t, list, []Device{keep})
	live, err := s.ListHandles(ctx, "d1")
	must(t, err)
	if len(live) != 0 {
		t.Errorf("live handles of deleted device = %v", live)
	}

	r, err := s.ResolveHandle(ctx, "h22")
	must(t, err)
	wantEqual(t, r, Route{Handle: "h22", TenantID: "t2", SiteID: "s3", DeviceID: "d1", Host: "10.1.1.1", Port: 22, AgentID: "agent-1", RevokedAt: &now})
	r, err = s.ResolveHandle(ctx, "h80")
	must(t, err)
	if r.RevokedAt == nil || !r.RevokedAt.Equal(t0) {
		t.Errorf("earlier revocation overwritten: RevokedAt = %v, want %v", r.RevokedAt, t0)
	}

	_, err = s.DeleteDevice(ctx, "d1", now)
	wantErr(t, err, ErrNotFound)
	_, err = s.DeleteDevice(ctx, "d9", now)
	wantErr(t, err, ErrNotFound)
	site, err := s.GetSite(ctx, "s3")
	must(t, err)
	if site.AllowlistVersion != 3 {
		t.Errorf("allowlist version = %d, want 3", site.AllowlistVersion)
	}
}

func TestListDevices(t *testing.T) { forEachStore(t, testListDevices) }

func testListDevices(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	seed(t, s)
	var want []Device
	for _, d := range []Device{
		{ID: "b", SiteID: "s1", Host: "h", Ports: []int{1}, CreatedAt: t0},
		{ID: "late", SiteID: "s1", Host: "h", Ports: []int{1}, CreatedAt: at(time.Hour)},
		{ID: "a", SiteID: "s1", Host: "h", Ports: []int{2, 1}, CreatedAt: t0},
		{ID: "elsewhere", SiteID: "s2", Host: "h", Ports: []int{1}, CreatedAt: t0},
	} {
		got, _, err := s.CreateDevice(ctx, d, nil)
		must(t, err)
		want = append(want, got)
	}
	list, err := s.ListDevices(ctx, "s1")
	must(t, err)
	wantEqual(t, list, []Device{want[2], want[0], want[1]})
	list, err = s.ListDevices(ctx, "s9")
	must(t, err)
	if len(list) != 0 {
		t.Errorf("ListDevices(s9) = %v, want none", list)
	}
}

func TestHandles(t *testing.T) { forEachStore(t, testHandles) }

func testHandles(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	seed(t, s)
	_, _, err := s.CreateDevice(ctx, Device{ID: "d1", SiteID: "s2", Host: "10.0.0.9", Ports: []int{502, 80}, CreatedAt: t0}, nil)
	must(t, err)
	legacy := Handle{Handle: "legacy", TenantID: "t1", DeviceID: "d1", Port: 502, AgentID: "a1", ExpiresAt: ptr(at(time.Hour)), CreatedAt: t0}
	must(t, s.InsertHandle(ctx, legacy))
	must(t, s.InsertHandle(ctx, Handle{Handle: "web", TenantID: "t1", DeviceID: "d1", Port: 80, CreatedAt: t0}))

	for _, tc := range []struct {
		name string
		h    Handle
		want error
	}{
		{"duplicate", Handle{Handle: "legacy", TenantID: "t1", DeviceID: "d1", Port: 1}, ErrConflict},
		{"unknown device", Handle{Handle: "x", TenantID: "t1", DeviceID: "d9", Port: 1}, ErrNotFound},
		{"unknown tenant", Handle{Handle: "y", TenantID: "t9", DeviceID: "d1", Port: 1}, ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) { wantErr(t, s.InsertHandle(ctx, tc.h), tc.want) })
	}

	r, err := s.ResolveHandle(ctx, "legacy")
	must(t, err)
	wantEqual(t, r, Route{Handle: "legacy", TenantID: "t1", SiteID: "s2", DeviceID: "d1", Host: "10.0.0.9", Port: 502, AgentID: "a1", ExpiresAt: ptr(at(time.Hour))})
	_, err = s.ResolveHandle(ctx, "nope")
	wantErr(t, err, ErrNotFound)

	for _, agent := range []string{"a2", "a2", "a1"} { // the first pin wins
		pinned, err := s.PinHandle(ctx, "web", agent)
		must(t, err)
		if pinned != "a2" {
			t.Errorf("PinHandle(web, %s) = %q, want a2", agent, pinned)
		}
	}
	r, err = s.ResolveHandle(ctx, "web")
	must(t, err)
	if r.AgentID != "a2" {
		t.Errorf("AgentID = %q, want a2", r.AgentID)
	}
	_, err = s.PinHandle(ctx, "nope", "a2")
	wantErr(t, err, ErrNotFound)

	list, err := s.ListHandles(ctx, "d1")
	must(t, err)
	if len(list) != 2 || list[0].Handle != "web" || list[1].Handle != "legacy" {
		t.Fatalf("ListHandles = %+v, want web (80) then legacy (502)", list)
	}
	wantEqual(t, list[1], legacy)

	must(t, s.RevokeHandle(ctx, "web", at(time.Minute)))
	must(t, s.RevokeHandle(ctx, "web", at(time.Hour)))
	r, err = s.ResolveHandle(ctx, "web")
	must(t, err)
	if r.RevokedAt == nil || !r.RevokedAt.Equal(at(time.Minute)) {
		t.Errorf("RevokedAt = %v, want %v", r.RevokedAt, at(time.Minute))
	}
	wantErr(t, s.RevokeHandle(ctx, "nope", t0), ErrNotFound)
	list, err = s.ListHandles(ctx, "d1")
	must(t, err)
	wantEqual(t, list, []Handle{legacy})
}

func TestAudit(t *testing.T) { forEachStore(t, testAudit) }

func testAudit(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	events := []AuditEvent{
		{At: t0, TenantID: "t1", Actor: "admin", Action: "agent.revoke", Target: "a1", Detail: "lost laptop"},
		{At: at(time.Second), Actor: "relay", Action: "agent.reject_unregistered_cn", Target: "cn=x"},
		{At: at(2 * time.Second), TenantID: "t2", Actor: "user:u2", Action: "agent.revoke", Target: "a2"},
		{ID: 999, At: at(3 * time.Second), TenantID: "t1", Actor: "agent:a3", Action: "device.create", Target: "d1"},
	}
	for _, e := range events {
		must(t, s.AppendAudit(ctx, e))
	}
	for i := range events {
		events[i].ID = int64(i + 1)
	}
	rev := func(idx ...int) []AuditEvent {
		var out []AuditEvent
		for _, i := range idx {
			out = append(out, events[i])
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    AuditFilter
		want []AuditEvent
	}{
		{"all", AuditFilter{}, rev(3, 2, 1, 0)},
		{"tenant", AuditFilter{TenantID: "t1"}, rev(3, 0)},
		{"action", AuditFilter{Action: "agent.revoke"}, rev(2, 0)},
		{"tenant and action", AuditFilter{TenantID: "t2", Action: "agent.revoke"}, rev(2)},
		{"limit", AuditFilter{Limit: 2}, rev(3, 2)},
		{"no match", AuditFilter{Action: "nope"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListAudit(ctx, tc.f)
			must(t, err)
			wantEqual(t, got, tc.want)
		})
	}

	for i := range defaultAuditLimit + 5 {
		must(t, s.AppendAudit(ctx, AuditEvent{At: t0, Actor: "relay", Action: "bulk", Target: fmt.Sprint(i)}))
	}
	got, err := s.ListAudit(ctx, AuditFilter{})
	must(t, err)
	if len(got) != defaultAuditLimit || got[0].Target != fmt.Sprint(defaultAuditLimit+4) {
		t.Fatalf("default page: %d events starting at %q, want %d starting at %q",
			len(got), got[0].Target, defaultAuditLimit, fmt.Sprint(defaultAuditLimit+4))
	}
}

func TestConcurrentWriters(t *testing.T) { forEachStore(t, testConcurrentWriters) }

func testConcurrentWriters(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	seed(t, s)
	const writers, each = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers*each*2)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				e := AuditEvent{At: t0, TenantID: "t1", Actor: fmt.Sprintf("writer:%d", w), Action: "test", Target: fmt.Sprint(i)}
				if err := s.AppendAudit(ctx, e); err != nil {
					errs <- err
				}
			}
		})
		// Readers and device writers run alongside.
		wg.Go(func() {
			for i := range each / 5 {
				if _, err := s.ListAudit(ctx, AuditFilter{TenantID: "t1", Limit: 10}); err != nil {
					errs <- err
				}
				if _, _, err := s.CreateDevice(ctx, Device{ID: fmt.Sprintf("d%d-%d", w, i), SiteID: "s1", CreatedAt: t0}, nil); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	got, err := s.ListAudit(ctx, AuditFilter{Limit: writers * each * 2})
	must(t, err)
	if len(got) != writers*each {
		t.Fatalf("%d audit events, want %d", len(got), writers*each)
	}
	seen := map[string]bool{}
	for i, e := range got {
		if want := int64(writers*each - i); e.ID != want {
			t.Fatalf("event %d has ID %d, want %d", i, e.ID, want)
		}
		seen[e.Actor+"/"+e.Target] = true
	}
	if len(seen) != writers*each {
		t.Errorf("%d distinct events, want %d", len(seen), writers*each)
	}

	devices, err := s.ListDevices(ctx, "s1")
	must(t, err)
	ips := map[string]bool{}
	for _, d := range devices {
		ips[d.LoopbackIP] = true
	}
	if n := writers * each / 5; len(devices) != n || len(ips) != n {
		t.Errorf("%d devices with %d distinct addresses, want %d", len(devices), len(ips), n)
	}
	site, err := s.GetSite(ctx, "s1")
	must(t, err)
	if site.AllowlistVersion != int64(len(devices)) {
		t.Errorf("allowlist version = %d, want %d", site.AllowlistVersion, len(devices))
	}
}
