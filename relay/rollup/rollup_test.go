package rollup

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/nanodems/connector/agent/stats"
	"github.com/nanodems/connector/relay/store"
)

// simAgent is an agent's counters as the agent keeps them (agent/stats,
// with its stats.json), driven by the test's clock.
type simAgent struct {
	id    string
	path  string
	set   *stats.Set
	ports []*stats.Port
	hosts []string
}

func (a *simAgent) start(t *testing.T, now func() time.Time) {
	t.Helper()
	s, err := stats.Open(a.path, now)
	if err != nil {
		t.Fatal(err)
	}
	a.set, a.ports = s, nil
	for _, h := range a.hosts {
		a.ports = append(a.ports, s.Port(h, 554))
	}
}

type hourKey struct {
	agent, host string
	hour        time.Time
}

// TestRollupsOverThreeDays drives two agents' counters for three
// simulated days, heartbeats through a Recorder into the store, with the
// hourly and daily rollups and the janitor running as the relay runs
// them. One agent restarts cleanly (its counters saved on the way out),
// then once after a crash (its stats.json 25 minutes older than the
// totals the relay had seen); the relay restarts once, losing the
// samples it had not written. At the end every hourly row equals the
// bytes the test moved in that hour (none lost, none counted twice),
// every daily row equals the bytes of its day, and running every job
// again changes nothing.
func TestRollupsOverThreeDays(t *testing.T) { forEachStore(t, testRollupsOverThreeDays) }

func testRollupsOverThreeDays(t *testing.T, st store.Store) {
	ctx := context.Background()
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	clock := start
	now := func() time.Time { return clock }
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	agents := []*simAgent{
		{id: "agent-a", path: filepath.Join(dir, "a.json"), hosts: []string{"10.0.0.1", "10.0.0.2"}},
		{id: "agent-b", path: filepath.Join(dir, "b.json"), hosts: []string{"10.0.1.1"}},
	}
	for _, a := range agents {
		a.start(t, now)
	}
	rec := NewRecorder(st, log)
	jobs := &Jobs{Store: st, Now: now, Log: log}
	moved := make(map[hourKey]int64) // the truth: bytes moved, by agent, host and hour
	var total int64

	// heartbeat moves bytes on every port of every agent and reports the
	// counters, as an agent's heartbeat does.
	step := 0
	heartbeat := func() {
		for ai, a := range agents {
			for pi, p := range a.ports {
				in, out := uint64(1000+step*7+ai*13+pi*101), uint64(100+step%17)
				p.Add(in, out)
				p.Open(stats.Opened)
				moved[hourKey{a.id, p.Host, clock.Truncate(time.Hour)}] += int64(in + out)
				total += int64(in + out)
			}
			snap := a.set.Snapshot(nil)
			rec.Record(ctx, a.id, clock, &snap)
		}
		step++
	}
	runJobs := func() {
		if err := jobs.Hourly(ctx); err != nil {
			t.Fatal(err)
		}
		if err := jobs.Daily(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := jobs.Janitor(ctx); err != nil {
			t.Fatal(err)
		}
	}

	end := start.Add(72 * time.Hour)
	restarted, crashed, relayRestarted := false, false, false
	for clock.Before(end) {
		heartbeat()
		switch {
		case !restarted && clock.Equal(start.Add(13*time.Hour+20*time.Minute)):
			// A clean restart: the agent saves its counters and its
			// session ends; the relay writes what it held.
			restarted = true
			if err := agents[0].set.Save(nil); err != nil {
				t.Fatal(err)
			}
			rec.End(ctx, agents[0].id)
			agents[0].start(t, now)
		case !crashed && clock.Equal(start.Add(30*time.Hour+35*time.Minute)):
			// Its last flush was at 30:10; the heartbeats since then
			// reached the relay, the file did not.
			crashed = true
			rec.End(ctx, agents[0].id)
			agents[0].start(t, now)
		case clock.Equal(start.Add(30*time.Hour + 10*time.Minute)):
			if err := agents[0].set.Save(nil); err != nil {
				t.Fatal(err)
			}
		case !relayRestarted && clock.Equal(start.Add(50*time.Hour+20*time.Minute)):
			// Heartbeats every 10 s for a minute, so that the relay holds
			// samples it has not written when it dies.
			relayRestarted = true
			for range 5 {
				clock = clock.Add(10 * time.Second)
				heartbeat()
			}
			rec = NewRecorder(st, log) // the dead relay's pending samples are gone
			jobs = &Jobs{Store: st, Now: now, Log: log}
		}
		if clock.Minute() == 0 || clock.Minute() == 25 {
			runJobs()
		}
		clock = clock.Truncate(5 * time.Minute).Add(5 * time.Minute)
	}
	rec.Flush(ctx)
	runJobs()
	if !restarted || !crashed || !relayRestarted {
		t.Fatal("the simulation missed a restart")
	}
	if agents[0].set.Boot() != 3 || agents[1].set.Boot() != 1 {
		t.Fatalf("boots %d and %d, want 3 and 1", agents[0].set.Boot(), agents[1].set.Boot())
	}

	check := func(when string) {
		t.Helper()
		for _, a := range agents {
			hours, err := st.HourlyStats(ctx, store.StatScope{AgentID: a.id}, start, end)
			if err != nil {
				t.Fatal(err)
			}
			got := make(map[hourKey]int64)
			for _, r := range hours {
				k := hourKey{r.AgentID, r.Host, r.Start}
				if _, dup := got[k]; dup {
					t.Errorf("%s: two rows for %v", when, k)
				}
				got[k] = r.Bytes()
			}
			for k, want := range moved {
				if k.agent == a.id && got[k] != want {
					t.Errorf("%s: %s %s hour %s: %d bytes, moved %d", when, k.agent, k.host, k.hour.Format(time.DateTime), got[k], want)
				}
			}
			if len(got) != len(a.hosts)*72 {
				t.Errorf("%s: %s has %d hourly rows, want %d", when, a.id, len(got), len(a.hosts)*72)
			}
		}
		days, err := st.DailyStats(ctx, store.StatScope{AgentID: "agent-a"}, start, end)
		if err != nil {
			t.Fatal(err)
		}
		days2, err := st.DailyStats(ctx, store.StatScope{AgentID: "agent-b"}, start, end)
		if err != nil {
			t.Fatal(err)
		}
		byDay := make(map[time.Time]int64)
		var sum int64
		for _, r := range append(days, days2...) {
			byDay[r.Start] += r.Bytes()
			sum += r.Bytes()
		}
		for d := range 3 {
			day := start.Add(time.Duration(d) * 24 * time.Hour)
			var want int64
			for k, b := range moved {
				if k.hour.Truncate(24 * time.Hour).Equal(day) {
					want += b
				}
			}
			if byDay[day] != want {
				t.Errorf("%s: day %s: %d bytes in daily rows, moved %d", when, day.Format(time.DateOnly), byDay[day], want)
			}
		}
		if sum != total {
			t.Errorf("%s: daily rows sum to %d bytes, moved %d", when, sum, total)
		}
	}
	check("after three days")
	jobs.janitorDay = "" // a janitor run on another relay the same day
	runJobs()
	runJobs()
	check("after the jobs ran again")
}
