package relay

import (
	"context"

	"github.com/nanodems/connector/relay/rollup"
)

// runStatsJobs starts the traffic rollups (relay/rollup), each under its
// TTL lock so that one relay of a fleet runs it: HourlyStatsRollup folds
// the heartbeat samples every relay writes into hourly rows,
// DailyStatsRollup sums them into daily rows, StatsJanitor reconciles and
// prunes once a day.
func (s *Server) runStatsJobs() {
	j := s.statsJobs
	s.runLocked(rollup.HourlyLock, rollup.HourlyEvery, 3*rollup.HourlyEvery, func(ctx context.Context) {
		if err := j.Hourly(ctx); err != nil {
			s.log.Warn("hourly stats rollup", "err", err)
		}
	})
	s.runLocked(rollup.DailyLock, rollup.DailyEvery, 3*rollup.DailyEvery, func(ctx context.Context) {
		if err := j.Daily(ctx); err != nil {
			s.log.Warn("daily stats rollup", "err", err)
		}
	})
	s.runLocked(rollup.JanitorLock, rollup.JanitorEvery, 3*rollup.JanitorEvery, func(ctx context.Context) {
		if _, err := j.Janitor(ctx); err != nil {
			s.log.Warn("stats janitor", "err", err)
		}
	})
}
