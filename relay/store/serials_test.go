package store

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// A serial is claimed once, by exactly one of several claims racing for
// it; a claimed serial registered again on another device is claimable
// there; a deleted device's serial is gone; a serial clash leaves the
// device change unwritten.
func TestClaimDeviceSerial(t *testing.T) { forEachStore(t, testClaimDeviceSerial) }

func testClaimDeviceSerial(t *testing.T, s *sqlStore) {
	ctx := context.Background()
	seed(t, s)
	serial := func(v string) *string { return &v }
	create := func(id, sn string) {
		t.Helper()
		_, _, err := s.ApplyDeviceChange(ctx, DeviceChange{Op: DeviceCreate, Device: Device{ID: id, SiteID: "s1", Host: "10.0.0.5", Ports: []int{80}, CreatedAt: t0}, Serial: serial(sn), Now: t0})
		must(t, err)
	}
	create("d1", "SN-1")

	if _, err := s.ClaimDeviceSerial(ctx, "SN-404", Agent{ID: "a-x", CreatedAt: t0}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown serial: %v", err)
	}
	// Eight claims at once: one agent is made, the others are ErrUsed.
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.ClaimDeviceSerial(ctx, "SN-1", Agent{ID: "a-" + string(rune('0'+i)), CertSerial: "c", CreatedAt: t0})
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrUsed):
			t.Errorf("a losing claim: %v", err)
		}
	}
	agents, err := s.ListAgents(ctx, "s1")
	must(t, err)
	if won != 1 || len(agents) != 1 {
		t.Fatalf("%d claims won, %d agents; want 1 and 1", won, len(agents))
	}
	ds, err := s.GetDeviceSerial(ctx, "d1")
	must(t, err)
	if ds.AgentID != agents[0].ID || ds.ClaimedAt == nil || ds.SiteID != "s1" {
		t.Fatalf("claimed serial %+v, agents %+v", ds, agents)
	}
	if ds, err := s.ClaimDeviceSerial(ctx, "SN-1", Agent{ID: "a-late", CreatedAt: t0}); !errors.Is(err, ErrUsed) || ds.AgentID != agents[0].ID {
		t.Fatalf("claim of a claimed serial: %+v %v", ds, err)
	}

	// The same serial on a new device (a reset camera registered again).
	create("d2", "SN-1")
	if ds, err := s.ClaimDeviceSerial(ctx, "SN-1", Agent{ID: "a-again", CreatedAt: t0.Add(time.Hour)}); err != nil || ds.DeviceID != "d2" {
		t.Fatalf("claim of the re-registered serial: %+v %v", ds, err)
	}

	// A clash rolls the whole change back.
	create("d3", "SN-3")
	_, _, err = s.ApplyDeviceChange(ctx, DeviceChange{Op: DeviceCreate, Device: Device{ID: "d4", SiteID: "s1", Host: "10.0.0.6", Ports: []int{80}, CreatedAt: t0}, Serial: serial("SN-3"), Now: t0})
	var se *SerialError
	if !errors.As(err, &se) || !errors.Is(err, ErrConflict) {
		t.Fatalf("clash: %v", err)
	}
	if _, err := s.GetDevice(ctx, "d4"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the clashing device was stored: %v", err)
	}
	// Deleted, its serial is gone.
	_, _, err = s.ApplyDeviceChange(ctx, DeviceChange{Op: DeviceDelete, Device: Device{ID: "d3"}, Now: t0})
	must(t, err)
	if _, err := s.ClaimDeviceSerial(ctx, "SN-3", Agent{ID: "a-gone", CreatedAt: t0}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("claim of a deleted device's serial: %v", err)
	}
}
