package store

import (
	"context"
	"slices"
	"testing"
	"time"
)

func TestLicenses(t *testing.T) { forEachStore(t, testLicenses) }

// A tenant onboarded with its first license has it; rotation adds one;
// lookups by GUID hash find revoked and live ones alike; revoking keeps
// its first time; unknown ids and tenants are refused.
func testLicenses(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	first := License{ID: "lic_1", Hash: []byte("guid-hash-1"), Hint: "abcd", TenantID: "t9", CreatedAt: t0}
	must(t, s.CreateTenantLicensed(ctx, Tenant{ID: "t9", Name: "Onboarded", CreatedAt: t0}, first))
	if _, err := s.GetTenant(ctx, "t9"); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetLicenseByHash(ctx, []byte("guid-hash-1"))
	must(t, err)
	wantEqual(t, got, first)

	// A failed license write leaves no tenant behind.
	wantErr(t, s.CreateTenantLicensed(ctx, Tenant{ID: "t8", Name: "x", CreatedAt: t0}, License{ID: "lic_1", Hash: []byte("other"), TenantID: "t8", CreatedAt: t0}), ErrConflict)
	_, err = s.GetTenant(ctx, "t8")
	wantErr(t, err, ErrNotFound)

	second := License{ID: "lic_2", Hash: []byte("guid-hash-2"), Hint: "efgh", TenantID: "t9", CreatedAt: at(time.Minute)}
	must(t, s.CreateLicense(ctx, second))
	wantErr(t, s.CreateLicense(ctx, License{ID: "lic_3", Hash: second.Hash, TenantID: "t9", CreatedAt: t0}), ErrConflict)
	wantErr(t, s.CreateLicense(ctx, License{ID: "lic_4", Hash: []byte("x"), TenantID: "nope", CreatedAt: t0}), ErrNotFound)

	must(t, s.RevokeLicense(ctx, "lic_1", at(time.Hour)))
	must(t, s.RevokeLicense(ctx, "lic_1", at(2*time.Hour)))
	wantErr(t, s.RevokeLicense(ctx, "lic_9", at(time.Hour)), ErrNotFound)
	got, err = s.GetLicense(ctx, "lic_1")
	must(t, err)
	if got.RevokedAt == nil || !got.RevokedAt.Equal(at(time.Hour)) {
		t.Errorf("revoked at %v, want the first revocation's time", got.RevokedAt)
	}
	ls, err := s.ListLicenses(ctx, "t9")
	must(t, err)
	if len(ls) != 2 || ls[0].ID != "lic_1" || ls[1].ID != "lic_2" || ls[1].RevokedAt != nil {
		t.Errorf("licenses of t9: %+v", ls)
	}
	ls, err = s.ListLicenses(ctx, "t1")
	must(t, err)
	if len(ls) != 0 {
		t.Errorf("licenses of t1: %+v", ls)
	}
}

func TestPartnerKeys(t *testing.T) { forEachStore(t, testPartnerKeys) }

// Revoking a partner key revokes, in the same write, every live session
// it issued and no other; a second revocation keeps the key's first
// time and finds nothing more to revoke.
func testPartnerKeys(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	seed(t, s)
	k := PartnerKey{ID: "pk_1", Hash: []byte("key-hash"), TenantID: "t1", Label: "NDIS", AllowedCIDR: "10.0.0.0/8", CreatedAt: t0}
	must(t, s.CreatePartnerKey(ctx, k))
	must(t, s.CreatePartnerKey(ctx, PartnerKey{ID: "pk_2", Hash: []byte("key-hash-2"), TenantID: "t1", CreatedAt: at(time.Second)}))
	wantErr(t, s.CreatePartnerKey(ctx, PartnerKey{ID: "pk_3", Hash: k.Hash, TenantID: "t1", CreatedAt: t0}), ErrConflict)
	got, err := s.GetPartnerKeyByHash(ctx, []byte("key-hash"))
	must(t, err)
	wantEqual(t, got, k)
	ks, err := s.ListPartnerKeys(ctx, "t1")
	must(t, err)
	if len(ks) != 2 || ks[0].ID != "pk_1" {
		t.Errorf("keys of t1: %+v", ks)
	}

	issued := cliSession("c1", "s1")
	issued.IssuerKeyID, issued.ExternalOperatorID, issued.OperatorDisplayName = "pk_1", "op-7", "Operator Seven"
	must(t, s.CreateCLISession(ctx, issued))
	got1, err := s.GetCLISession(ctx, "c1")
	must(t, err)
	wantEqual(t, got1, issued)
	must(t, s.CreateCLISession(ctx, func() CLISession { c := cliSession("c2", "s1"); c.IssuerKeyID = "pk_2"; return c }()))
	must(t, s.CreateCLISession(ctx, cliSession("c3", "s2")))
	already := cliSession("c4", "s1")
	already.IssuerKeyID = "pk_1"
	must(t, s.CreateCLISession(ctx, already))
	must(t, s.RevokeCLISession(ctx, "c4", at(time.Minute)))

	live, err := s.ListTenantCLISessions(ctx, "t1", at(time.Hour))
	must(t, err)
	if ids := sessionIDs(live); !slices.Equal(ids, []string{"c1", "c2", "c3"}) {
		t.Errorf("live sessions of t1: %v", ids)
	}

	revoked, err := s.RevokePartnerKey(ctx, "pk_1", at(time.Hour))
	must(t, err)
	if !slices.Equal(revoked, []string{"c1"}) {
		t.Errorf("revoked sessions %v, want [c1]", revoked)
	}
	for id, want := range map[string]bool{"c1": true, "c2": false, "c3": false} {
		c, err := s.GetCLISession(ctx, id)
		must(t, err)
		if (c.RevokedAt != nil) != want {
			t.Errorf("session %s revoked %v, want %v", id, c.RevokedAt, want)
		}
	}
	revoked, err = s.RevokePartnerKey(ctx, "pk_1", at(2*time.Hour))
	must(t, err)
	if len(revoked) != 0 {
		t.Errorf("second revocation revoked %v", revoked)
	}
	got, err = s.GetPartnerKey(ctx, "pk_1")
	must(t, err)
	if got.RevokedAt == nil || !got.RevokedAt.Equal(at(time.Hour)) {
		t.Errorf("key revoked at %v, want the first time", got.RevokedAt)
	}
	_, err = s.RevokePartnerKey(ctx, "pk_9", at(time.Hour))
	wantErr(t, err, ErrNotFound)
}

func sessionIDs(cs []CLISession) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, c.ID)
	}
	slices.Sort(out)
	return out
}
