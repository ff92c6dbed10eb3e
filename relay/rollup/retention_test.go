package rollup

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nanodems/connector/relay/store"
)

// TestJanitorRetention puts hourly and daily rows on both sides of the
// 30- and 365-day cuts and runs the janitor: it drops exactly the hours
// that ended 30 days ago or more and the days that ended 365 days ago or
// more, keeps the rest, and rewrites the whole days still covered by
// hours from those hours (a daily row left behind by a late hour is
// brought up to date), leaving the day the hourly cut falls in as it was.
func TestJanitorRetention(t *testing.T) { forEachStore(t, testJanitorRetention) }

func testJanitorRetention(t *testing.T, st store.Store) {
	ctx := context.Background()
	now := time.Date(2027, 3, 10, 12, 30, 0, 0, time.UTC)
	hourCut, dayCut := now.Add(-HourlyRetention), now.Add(-DailyRetention) // 2027-02-08 12:30, 2026-03-10 12:30
	// One sample per hour makes one hourly row of 100 bytes (each a new
	// boot of base 0: a fresh counter per sample).
	hours := []time.Time{
		dayCut.Add(-49 * time.Hour).Truncate(time.Hour), // its day ended before the day cut
		dayCut.Add(-13 * time.Hour).Truncate(time.Hour), // 2026-03-09 23:00: its day ended 12.5 h before the day cut
		dayCut.Truncate(time.Hour),                      // 2026-03-10 12:00: its day ends after the day cut
		hourCut.Add(-2 * time.Hour).Truncate(time.Hour), // 10:00, ended 1.5 h before the hour cut
		hourCut.Add(-time.Hour).Truncate(time.Hour),     // 11:00, ended 30 min before the hour cut
		hourCut.Truncate(time.Hour),                     // 12:00, ends 30 min after the hour cut
		hourCut.Add(20 * time.Hour).Truncate(time.Hour), // the next day, whole
		now.Truncate(time.Hour),
	}
	var samples []store.StatSample
	for i, h := range hours {
		samples = append(samples, store.StatSample{AgentID: "agent-r", Host: "10.0.0.9", Port: 80, Epoch: "e", Boot: int64(i + 1),
			At: h.Add(time.Minute), Totals: store.StatCounts{BytesIn: 100}})
	}
	if err := st.AddStatSamples(ctx, samples); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RollupHourlyStats(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.RollupDailyStats(ctx, now.Add(-400*24*time.Hour), now); err != nil {
		t.Fatal(err)
	}
	// An hour of the first whole day after the hour cut comes in after
	// its daily row was made: the janitor must bring the row to the sum
	// of its hours.
	wholeDay := FirstWholeDay(hourCut)
	if !wholeDay.Equal(time.Date(2027, 2, 9, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("first whole day %s", wholeDay)
	}
	if err := st.AddStatSamples(ctx, []store.StatSample{{AgentID: "agent-r", Host: "10.0.0.9", Port: 80, Epoch: "e", Boot: 100,
		At: wholeDay.Add(3 * time.Hour), Totals: store.StatCounts{BytesIn: 5}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RollupHourlyStats(ctx); err != nil {
		t.Fatal(err)
	}
	jobs := &Jobs{Store: st, Now: func() time.Time { return now }, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ran, err := jobs.Janitor(ctx)
	if err != nil || !ran {
		t.Fatalf("janitor: ran %v, %v", ran, err)
	}
	if ran, _ := jobs.Janitor(ctx); ran {
		t.Error("the janitor ran twice in a day")
	}

	scope := store.StatScope{AgentID: "agent-r"}
	gotHours, err := st.HourlyStats(ctx, scope, now.Add(-500*24*time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var kept []time.Time
	for _, r := range gotHours {
		kept = append(kept, r.Start)
	}
	wantHours := []time.Time{hours[5], wholeDay.Add(3 * time.Hour), hours[6], hours[7]}
	if !equalTimes(kept, wantHours) {
		t.Errorf("hourly rows kept %v, want %v", kept, wantHours)
	}
	gotDays, err := st.DailyStats(ctx, scope, now.Add(-500*24*time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	byDay := make(map[time.Time]int64)
	var days []time.Time
	for _, r := range gotDays {
		days = append(days, r.Start)
		byDay[r.Start] = r.BytesIn
	}
	wantDays := []time.Time{
		hours[2].Truncate(24 * time.Hour), // the day the day cut falls in
		hours[3].Truncate(24 * time.Hour), // the day the hour cut falls in: hours 10, 11 and 12
		wholeDay,
		now.Truncate(24 * time.Hour),
	}
	if !equalTimes(days, wantDays) {
		t.Errorf("daily rows kept %v, want %v", days, wantDays)
	}
	if byDay[wantDays[1]] != 300 {
		t.Errorf("the day the hour cut falls in has %d bytes, want the 300 of its three hours as rolled up before", byDay[wantDays[1]])
	}
	if byDay[wholeDay] != 105 {
		t.Errorf("the first whole day has %d bytes, want 105 from its hours", byDay[wholeDay])
	}
}

func equalTimes(a, b []time.Time) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}
