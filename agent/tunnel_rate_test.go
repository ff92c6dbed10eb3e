package agent

import (
	"testing"
	"time"
)

// A tunnel is judged over at least half a sweep's interval: 20 kB moved
// within a millisecond of its open is not a heavy rate yet.
func TestRateNeedsHalfATick(t *testing.T) {
	now := time.Now()
	lt := &liveTunnel{lastAt: now.Add(-time.Millisecond)}
	if r, ok := lt.rate(20000, now); ok {
		t.Fatalf("judged after 1 ms: %.0f B/s", r)
	}
	if lt.lastBytes != 0 || !lt.lastAt.Equal(now.Add(-time.Millisecond)) {
		t.Fatal("an interval too short to judge was started over")
	}
	later := now.Add(rateTick)
	r, ok := lt.rate(20000, later)
	if !ok {
		t.Fatal("not judged after a tick")
	}
	if want := 20000 / (rateTick + time.Millisecond).Seconds(); r < want*0.99 || r > want*1.01 {
		t.Errorf("rate %.0f B/s, want %.0f", r, want)
	}
	if lt.lastBytes != 20000 || !lt.lastAt.Equal(later) {
		t.Error("the next interval did not start at this sweep")
	}
}
