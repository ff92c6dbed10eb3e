package relay

import (
	"testing"
	"time"
)

// dayBytes counts the growth of an agent's running totals since UTC
// midnight: the first heartbeat is the baseline, a restarted agent's
// totals count from zero, and a new day starts at zero.
func TestDayBytes(t *testing.T) {
	day := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var d dayBytes
	steps := []struct {
		at    time.Time
		total uint64
		want  uint64
	}{
		{day, 5000, 0},                                    // baseline: the agent ran before this session
		{day.Add(5 * time.Second), 5600, 600},             // grew by 600
		{day.Add(10 * time.Second), 5600, 600},            // idle
		{day.Add(15 * time.Second), 100, 700},             // the agent restarted: 100 new bytes
		{day.Add(14 * time.Hour), 400, 300},               // next day (00:00 UTC passed): only its 300
		{day.Add(14*time.Hour + 5*time.Second), 450, 350}, //
	}
	for i, s := range steps {
		d.add(s.at, s.total)
		if got := d.get(s.at); got != s.want {
			t.Fatalf("step %d: %d bytes today, want %d", i, got, s.want)
		}
	}
	if got := d.get(day.Add(48 * time.Hour)); got != 0 {
		t.Errorf("a day without heartbeats shows %d", got)
	}
}
