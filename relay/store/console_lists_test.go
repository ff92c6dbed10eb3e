package store

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// A token keeps its label, and its last use only moves forward.
func TestAPITokenLabelAndLastUse(t *testing.T) { forEachStore(t, testAPITokenLabelAndLastUse) }

func testAPITokenLabelAndLastUse(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	seed(t, s)
	must(t, s.CreateUser(ctx, User{ID: "u1", TenantID: "t1", Email: "a@example.com", CreatedAt: t0}))
	tok := APIToken{ID: "k1", UserID: "u1", TenantID: "t1", Hash: []byte{1}, Label: "backup script", CreatedAt: t0}
	must(t, s.CreateAPIToken(ctx, tok))
	got, err := s.GetAPIToken(ctx, "k1")
	must(t, err)
	wantEqual(t, got, tok)

	must(t, s.TouchAPIToken(ctx, "k1", at(2*time.Hour)))
	must(t, s.TouchAPIToken(ctx, "k1", at(time.Hour))) // an older use does not go back
	tok.LastUsedAt = ptr(at(2 * time.Hour))
	got, err = s.GetAPITokenByHash(ctx, []byte{1})
	must(t, err)
	wantEqual(t, got, tok)
	list, _, err := s.ListUserAPITokens(ctx, "u1", Page{})
	must(t, err)
	wantEqual(t, list, []APIToken{tok})
}

// ListTenantAgents pages the agents of every site of one tenant, each
// once, and none of another tenant.
func TestListTenantAgents(t *testing.T) { forEachStore(t, testListTenantAgents) }

func testListTenantAgents(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	seed(t, s)
	var want []string
	for i := range 7 {
		site := []string{"s1", "s2", "s3"}[i%3]
		id := fmt.Sprintf("a%d", i)
		must(t, s.CreateAgent(ctx, Agent{ID: id, SiteID: site, CertSerial: "1", CreatedAt: at(time.Duration(i%2) * time.Second)}))
		if site != "s3" {
			want = append(want, id)
		}
	}
	seen := map[string]bool{}
	p := Page{Limit: 2}
	for pages := 0; ; pages++ {
		as, next, err := s.ListTenantAgents(ctx, "t1", p)
		must(t, err)
		for _, a := range as {
			if seen[a.ID] || a.SiteID == "s3" {
				t.Fatalf("agent %s listed twice or of another tenant", a.ID)
			}
			seen[a.ID] = true
		}
		if next == "" {
			break
		}
		if pages > 5 {
			t.Fatal("more pages than agents")
		}
		p.Cursor = next
	}
	if len(seen) != len(want) {
		t.Fatalf("listed %v, want %v", seen, want)
	}
	_, _, err := s.ListTenantAgents(ctx, "t1", Page{Cursor: "bogus!"})
	wantErr(t, err, ErrBadCursor)
}

// AuditFilter's time window and Before page the log.
func TestAuditWindowAndPages(t *testing.T) { forEachStore(t, testAuditWindowAndPages) }

func testAuditWindowAndPages(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	for i := range 10 {
		must(t, s.AppendAudit(ctx, AuditEvent{At: at(time.Duration(i) * time.Minute), TenantID: "t1", Actor: "admin", Action: "x", Target: fmt.Sprint(i)}))
	}
	targets := func(f AuditFilter) string {
		t.Helper()
		es, err := s.ListAudit(ctx, f)
		must(t, err)
		out := ""
		for _, e := range es {
			out += e.Target
		}
		return out
	}
	wantEqual(t, targets(AuditFilter{TenantID: "t1", Since: at(3 * time.Minute), Until: at(6 * time.Minute)}), "543")
	first, err := s.ListAudit(ctx, AuditFilter{TenantID: "t1", Limit: 4})
	must(t, err)
	wantEqual(t, targets(AuditFilter{TenantID: "t1", Limit: 4, Before: first[3].ID}), "5432")
	wantEqual(t, targets(AuditFilter{TenantID: "t1", Before: first[3].ID, Since: at(4 * time.Minute)}), "54")
	wantEqual(t, targets(AuditFilter{TenantID: "t2"}), "")
}
