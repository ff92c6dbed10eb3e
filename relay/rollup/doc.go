// Package rollup turns the per-port counters agents send in their
// heartbeats into the relay's traffic history: a Recorder writes them to
// the store as samples, and Jobs fold the samples into hourly rows
// (HourlyStatsRollup), sum the hours into daily rows (DailyStatsRollup)
// and, once a day, reconcile the days from their hours and drop what is
// past retention (StatsJanitor). Each job must run on one relay at a time;
// the relay runs them under its TTL locks. docs/stats.md has the design.
package rollup
