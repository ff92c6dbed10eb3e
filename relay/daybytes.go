package relay

import (
	"sync"
	"time"
)

// dayBytes counts the bytes an agent session carried since UTC midnight,
// for the Agents page's "bytes today". Heartbeats report the agent's
// running totals; the count grows by each heartbeat's increase and starts
// again at zero on a new day. A session counts from its first heartbeat:
// a reconnect starts a new count, and a relay shows what it carried.
type dayBytes struct {
	mu    sync.Mutex
	day   string // "2006-01-02" of bytes
	bytes uint64
	last  uint64 // the previous heartbeat's total
	seen  bool
}

// add records a heartbeat at now with the agent's running total.
func (d *dayBytes) add(now time.Time, total uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	day := now.UTC().Format(time.DateOnly)
	if d.day != day {
		d.day, d.bytes = day, 0
	}
	// The first heartbeat is the baseline (the agent's totals run since
	// it started, maybe days ago); a total below the last is an agent
	// that restarted its counters, whose new total is all new bytes.
	switch {
	case !d.seen:
	case total >= d.last:
		d.bytes += total - d.last
	default:
		d.bytes += total
	}
	d.last, d.seen = total, true
}

// get is the count of now's day.
func (d *dayBytes) get(now time.Time) uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.day != now.UTC().Format(time.DateOnly) {
		return 0
	}
	return d.bytes
}
