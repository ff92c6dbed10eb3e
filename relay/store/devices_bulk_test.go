package store

import (
	"context"
	"fmt"
	"testing"
)

// A bulk create lands whole with one allowlist bump, or not at all.
func TestCreateDevicesIsAtomic(t *testing.T) { forEachStore(t, testCreateDevicesIsAtomic) }

func testCreateDevicesIsAtomic(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	seed(t, s)
	batch := func(n int, bad int) []DeviceChange {
		var cs []DeviceChange
		for i := range n {
			id := fmt.Sprintf("d%d", i)
			h := Handle{Handle: "h-" + id, Port: 80, CreatedAt: t0}
			if i == bad {
				h.Handle = "h-d0" // a duplicate handle fails the row
			}
			cs = append(cs, DeviceChange{Op: DeviceCreate, Device: Device{ID: id, SiteID: "s1", Host: fmt.Sprintf("10.0.0.%d", i+1), Ports: []int{80}, CreatedAt: t0},
				Handles: []Handle{h}, Audit: []AuditEvent{{Actor: "user:u1", Action: "device.create", Target: id}}, Now: t0})
		}
		return cs
	}
	_, _, err := s.CreateDevices(ctx, "s1", batch(50, 49))
	wantErr(t, err, ErrConflict)
	devs, err := s.ListDevices(ctx, "s1")
	must(t, err)
	site, err := s.GetSite(ctx, "s1")
	must(t, err)
	evs, err := s.ListAudit(ctx, AuditFilter{Action: "device.create"})
	must(t, err)
	if len(devs) != 0 || site.AllowlistVersion != 0 || len(evs) != 0 {
		t.Fatalf("a failed batch left %d devices, version %d, %d audit records", len(devs), site.AllowlistVersion, len(evs))
	}

	// Another site's device in the batch fails it too.
	other := batch(2, -1)
	other[1].Device.SiteID = "s3"
	if _, _, err := s.CreateDevices(ctx, "s1", other); err == nil {
		t.Fatal("a batch with a device of another site was stored")
	}

	out, v, err := s.CreateDevices(ctx, "s1", batch(50, -1))
	must(t, err)
	if v != 1 || len(out) != 50 || out[0].LoopbackIP == "" || out[0].LoopbackIP == out[49].LoopbackIP {
		t.Fatalf("version %d, %d devices (%s … %s)", v, len(out), out[0].LoopbackIP, out[49].LoopbackIP)
	}
	devs, err = s.ListDevices(ctx, "s1")
	must(t, err)
	hs, err := s.ListHandles(ctx, "d49")
	must(t, err)
	evs, err = s.ListAudit(ctx, AuditFilter{Action: "device.create"})
	must(t, err)
	if len(devs) != 50 || len(hs) != 1 || hs[0].TenantID != "t1" || len(evs) != 50 {
		t.Fatalf("%d devices, handles of d49 %+v, %d audit records", len(devs), hs, len(evs))
	}
}
