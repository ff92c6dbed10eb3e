package store

import (
	"context"
	"testing"
	"time"
)

// A device change lands whole with its handles, login, audit records and
// allowlist bump, or not at all.
func TestApplyDeviceChangeIsAtomic(t *testing.T) { forEachStore(t, testApplyDeviceChangeIsAtomic) }

func testApplyDeviceChangeIsAtomic(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	seed(t, s)
	audit := func(action string) []AuditEvent {
		return []AuditEvent{{Actor: "user:u1", Action: action, Target: "d1", Detail: "x"}}
	}
	d, v, err := s.ApplyDeviceChange(ctx, DeviceChange{
		Op: DeviceCreate, Device: Device{ID: "d1", SiteID: "s1", Host: "10.0.0.5", Ports: []int{80}, CreatedAt: t0},
		Handles: []Handle{{Handle: "h-80", Port: 80, CreatedAt: t0}}, SetCredentials: true, Sealed: []byte("sealed"),
		Audit: audit("device.create"), Now: t0,
	})
	must(t, err)
	if v != 1 || d.LoopbackIP != "127.0.0.2" {
		t.Fatalf("created %+v at version %d", d, v)
	}
	evs, err := s.ListAudit(ctx, AuditFilter{Action: "device.create"})
	must(t, err)
	if len(evs) != 1 || evs[0].TenantID != "t1" || !evs[0].At.Equal(t0) {
		t.Fatalf("audit %+v, want one record of tenant t1 at the change's time", evs)
	}
	sealed, err := s.GetDeviceCredentials(ctx, "d1")
	must(t, err)
	if string(sealed) != "sealed" {
		t.Fatalf("credentials %q", sealed)
	}

	// An update whose handle belongs to another tenant fails: the new
	// fields, the login, the audit record and the bump are all dropped.
	now := t0.Add(time.Minute)
	_, _, err = s.ApplyDeviceChange(ctx, DeviceChange{
		Op: DeviceUpdate, Device: Device{ID: "d1", Host: "10.0.0.6", Ports: []int{443}, Label: "moved"},
		Handles: []Handle{{Handle: "h-443", TenantID: "t2", Port: 443, CreatedAt: now}}, SetCredentials: true,
		Audit: audit("device.update"), Now: now,
	})
	if err == nil {
		t.Fatal("update with another tenant's handle succeeded")
	}
	got, err := s.GetDevice(ctx, "d1")
	must(t, err)
	if got.Host != "10.0.0.5" || got.Label != "" || len(got.Ports) != 1 || got.Ports[0] != 80 {
		t.Errorf("device after a failed update: %+v", got)
	}
	hs, err := s.ListHandles(ctx, "d1")
	must(t, err)
	if len(hs) != 1 || hs[0].Handle != "h-80" {
		t.Errorf("handles after a failed update: %+v", hs)
	}
	if _, err := s.GetDeviceCredentials(ctx, "d1"); err != nil {
		t.Errorf("credentials after a failed update: %v", err)
	}
	if evs, _ := s.ListAudit(ctx, AuditFilter{Action: "device.update"}); len(evs) != 0 {
		t.Errorf("audit of a failed update: %+v", evs)
	}
	if site, _ := s.GetSite(ctx, "s1"); site.AllowlistVersion != 1 {
		t.Errorf("allowlist version %d after a failed update, want 1", site.AllowlistVersion)
	}

	// Delete clears the login with the rest.
	_, v, err = s.ApplyDeviceChange(ctx, DeviceChange{Op: DeviceDelete, Device: Device{ID: "d1"}, Audit: audit("device.delete"), Now: now})
	must(t, err)
	if v != 2 {
		t.Errorf("version %d after delete, want 2", v)
	}
	_, err = s.GetDeviceCredentials(ctx, "d1")
	wantErr(t, err, ErrNotFound)
	if evs, _ := s.ListAudit(ctx, AuditFilter{Action: "device.delete"}); len(evs) != 1 {
		t.Errorf("delete audit %+v", evs)
	}
}

func TestSiteAllowLoopback(t *testing.T) { forEachStore(t, testSiteAllowLoopback) }

func testSiteAllowLoopback(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	seed(t, s)
	site, err := s.GetSite(ctx, "s1")
	must(t, err)
	if site.AllowLoopback {
		t.Fatal("a site allows local targets by default")
	}
	site.AllowLoopback, site.Name = true, "Plant A2"
	must(t, s.UpdateSite(ctx, site))
	got, err := s.GetSite(ctx, "s1")
	must(t, err)
	wantEqual(t, got, site)
	wantErr(t, s.UpdateSite(ctx, Site{ID: "nope"}), ErrNotFound)
}
