// Package gctune sets the garbage collector's target of the connector's
// long-running processes: the relay, the agent and nanodems-tunnel.
package gctune

import (
	"os"
	"runtime/debug"
)

// Percent is the GOGC those processes run with unless the environment
// sets GOGC. Their live heaps are small (a few MiB, plus about 4 KiB per
// open tunnel) and they allocate little per byte moved (pooled buffers),
// so the default 100 mostly bought headroom that showed as RSS: with 1,000
// connections echoing 64 B every 100 ms, the three processes held 99.5 –
// 106.6 MiB at 100 and 88.4 – 97.6 MiB at 50, for the same CPU (12.6 –
// 13.6 CPU s against 13.1 – 13.3; docs/perf-peers-changes.md).
const Percent = 50

// Apply sets the collector's target to Percent, unless GOGC is set (an
// operator's choice wins).
func Apply() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(Percent)
	}
}
