package store

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestLists(t *testing.T) { forEachStore(t, testLists) }

// testLists walks every paged list two rows a page: each row once, in
// (created_at, id) order, the last page without a cursor; a foreign
// cursor is ErrBadCursor; other parents' rows never show.
func testLists(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	seed(t, s)
	for i := range 5 {
		must(t, s.CreateUser(ctx, User{ID: fmt.Sprintf("u%d", i), TenantID: "t1", Email: fmt.Sprintf("u%d@x", i), PasswordHash: "h", CreatedAt: at(time.Duration(i%2) * time.Second)}))
		must(t, s.CreateAPIToken(ctx, APIToken{ID: fmt.Sprintf("tok%d", i), UserID: "u0", TenantID: "t1", Hash: []byte{byte(i)}, CreatedAt: at(time.Duration(i) * time.Second)}))
		hs := []Handle{{Handle: fmt.Sprintf("h_%d", i), Port: 80, CreatedAt: at(time.Duration(i) * time.Second)}}
		_, _, err := s.CreateDevice(ctx, Device{ID: fmt.Sprintf("d%d", i), SiteID: "s1", Host: "10.0.0.1", Ports: []int{80}, CreatedAt: at(time.Duration(i) * time.Second)}, hs)
		must(t, err)
	}
	_, _, err := s.CreateDevice(ctx, Device{ID: "other", SiteID: "s3", Host: "10.0.0.2", Ports: []int{80}, CreatedAt: t0},
		[]Handle{{Handle: "h_other", Port: 80, CreatedAt: t0}})
	must(t, err)
	_, err = s.DeleteDevice(ctx, "d4", at(time.Minute))
	must(t, err)

	walk := func(name string, page func(Page) ([]string, string, error), want []string) {
		t.Helper()
		var got []string
		p := Page{Limit: 2}
		for range 10 {
			ids, next, err := page(p)
			must(t, err)
			got = append(got, ids...)
			if next == "" {
				break
			}
			p.Cursor = next
		}
		wantEqual(t, fmt.Sprint(name, got), fmt.Sprint(name, want))
	}
	walk("users", func(p Page) ([]string, string, error) {
		us, next, err := s.ListUsers(ctx, "t1", p)
		return ids(us, func(u User) string { return u.ID }), next, err
	}, []string{"u0", "u2", "u4", "u1", "u3"})
	walk("tokens", func(p Page) ([]string, string, error) {
		ts, next, err := s.ListUserAPITokens(ctx, "u0", p)
		return ids(ts, func(t APIToken) string { return t.ID }), next, err
	}, []string{"tok0", "tok1", "tok2", "tok3", "tok4"})
	walk("devices", func(p Page) ([]string, string, error) {
		ds, next, err := s.ListDevicesPage(ctx, "s1", p)
		return ids(ds, func(d Device) string { return d.ID }), next, err
	}, []string{"d0", "d1", "d2", "d3"})
	walk("handles", func(p Page) ([]string, string, error) {
		hs, next, err := s.ListSiteHandles(ctx, "s1", p)
		return ids(hs, func(h Handle) string { return h.Handle }), next, err
	}, []string{"h_0", "h_1", "h_2", "h_3"})
	walk("sites", func(p Page) ([]string, string, error) {
		ss, next, err := s.ListSites(ctx, "t1", p)
		return ids(ss, func(s Site) string { return s.ID }), next, err
	}, []string{"s1", "s2"})

	_, _, err = s.ListSites(ctx, "t1", Page{Cursor: "not a cursor"})
	wantErr(t, err, ErrBadCursor)

	tenants, err := s.ListTenants(ctx)
	must(t, err)
	wantEqual(t, ids(tenants, func(t Tenant) string { return t.ID }), []string{"t1", "t2"})

	n, err := s.CountDevices(ctx, []string{"s1", "s2", "s3"})
	must(t, err)
	wantEqual(t, n, map[string]int{"s1": 4, "s3": 1})
}

func ids[T any](vs []T, id func(T) string) []string {
	out := []string{}
	for _, v := range vs {
		out = append(out, id(v))
	}
	return out
}
