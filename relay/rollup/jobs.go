package rollup

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nanodems/connector/relay/store"
)

// Retention of the rows.
const (
	HourlyRetention = 30 * 24 * time.Hour
	DailyRetention  = 365 * 24 * time.Hour
)

// Lock names and cadences of the jobs. Each runs under a TTL lock of
// three ticks, so one relay of a fleet runs it and another takes over
// within three ticks of its holder's death.
const (
	HourlyLock   = "HourlyStatsRollup"
	HourlyEvery  = time.Minute
	DailyLock    = "DailyStatsRollup"
	DailyEvery   = 10 * time.Minute
	JanitorLock  = "StatsJanitor"
	JanitorEvery = time.Hour // it works once per UTC day; the tick finds the day
)

// Jobs are the rollup jobs over one store. Now is the clock.
type Jobs struct {
	Store store.Store
	Now   func() time.Time
	Log   *slog.Logger

	janitorDay string // the UTC day the janitor last ran, on this relay
}

// Hourly folds the samples written since the last run into hourly rows.
func (j *Jobs) Hourly(ctx context.Context) error {
	n, err := j.Store.RollupHourlyStats(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		j.Log.Debug("hourly stats rollup", "samples", n)
	}
	return nil
}

// Daily rewrites yesterday's and today's daily rows from their hours:
// yesterday's too, because the hourly rollup may add to yesterday's last
// hour after midnight.
func (j *Jobs) Daily(ctx context.Context) error {
	now := j.Now().UTC()
	return j.Store.RollupDailyStats(ctx, now.Add(-24*time.Hour), now)
}

// Janitor, once per UTC day, rewrites every day whose hours are all still
// kept from those hours (hours are the truth), then drops the rows past
// retention: an hourly row once its hour ended HourlyRetention ago or
// more, a daily row once its day ended DailyRetention ago or more. It
// returns whether it ran.
func (j *Jobs) Janitor(ctx context.Context) (bool, error) {
	now := j.Now().UTC()
	day := now.Format(time.DateOnly)
	if day == j.janitorDay {
		return false, nil
	}
	hourCut, dayCut := now.Add(-HourlyRetention), now.Add(-DailyRetention)
	if err := j.Store.RollupDailyStats(ctx, FirstWholeDay(hourCut), now); err != nil {
		return false, fmt.Errorf("stats janitor: %w", err)
	}
	hours, days, err := j.Store.PruneStats(ctx, hourCut, dayCut)
	if err != nil {
		return false, fmt.Errorf("stats janitor: %w", err)
	}
	j.janitorDay = day
	j.Log.Info("stats janitor", "reconciled_from", FirstWholeDay(hourCut).Format(time.DateOnly), "hourly_dropped", hours, "daily_dropped", days)
	return true, nil
}

// FirstWholeDay is the start of the first UTC day all of whose hours are
// kept when the hours that ended at or before cut are dropped: the first
// day whose first hour ends after cut.
func FirstWholeDay(cut time.Time) time.Time {
	x := cut.UTC().Add(-time.Hour)
	first := x.Truncate(24 * time.Hour)
	if !first.After(x) {
		first = first.Add(24 * time.Hour)
	}
	return first
}
