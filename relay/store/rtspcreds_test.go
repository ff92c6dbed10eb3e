package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// An RTSP credential is stored as given, listed for its tenant only while
// it is not revoked, and a revocation keeps its first time.
func TestRTSPCredentials(t *testing.T) { forEachStore(t, testRTSPCredentials) }

func testRTSPCredentials(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	seed(t, s)
	a := RTSPCredential{ID: "rc_a", TenantID: "t1", Name: "VMS", HA1: "00112233445566778899aabbccddeeff", CreatedBy: "admin", CreatedAt: t0}
	b := RTSPCredential{ID: "rc_b", TenantID: "t1", SiteID: "s2", Name: "NVR B", HA1: "ffeeddccbbaa99887766554433221100", CreatedAt: at(time.Second), ExpiresAt: ptr(at(time.Hour))}
	c := RTSPCredential{ID: "rc_c", TenantID: "t2", Name: "other", HA1: "0f", CreatedAt: t0}
	for _, x := range []RTSPCredential{a, b, c} {
		must(t, s.CreateRTSPCredential(ctx, x))
	}
	if err := s.CreateRTSPCredential(ctx, a); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate id: %v, want ErrConflict", err)
	}
	got, err := s.GetRTSPCredential(ctx, "rc_b")
	must(t, err)
	wantEqual(t, got, b)
	list, err := s.ListRTSPCredentials(ctx, "t1")
	must(t, err)
	wantEqual(t, list, []RTSPCredential{a, b})

	must(t, s.RevokeRTSPCredential(ctx, "rc_a", at(time.Minute)))
	must(t, s.RevokeRTSPCredential(ctx, "rc_a", at(time.Hour)))
	got, err = s.GetRTSPCredential(ctx, "rc_a")
	must(t, err)
	if got.RevokedAt == nil || !got.RevokedAt.Equal(at(time.Minute)) {
		t.Fatalf("revoked at %v, want %v", got.RevokedAt, at(time.Minute))
	}
	list, err = s.ListRTSPCredentials(ctx, "t1")
	must(t, err)
	wantEqual(t, list, []RTSPCredential{b})
	if err := s.RevokeRTSPCredential(ctx, "rc_nope", t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoke unknown: %v, want ErrNotFound", err)
	}
	if _, err := s.GetRTSPCredential(ctx, "rc_nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get unknown: %v, want ErrNotFound", err)
	}
}
