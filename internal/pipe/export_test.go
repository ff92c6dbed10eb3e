package pipe

import "time"

// InlineChunks is how many chunks were written on the goroutine that
// delivered them (moveBuffered) since the process started.
func InlineChunks() uint64 { return inlineChunks.Load() }

// SetBusyGap sets busyGap for a test and restores it after.
func SetBusyGap(tb interface{ Cleanup(func()) }, d time.Duration) {
	old := busyGap
	busyGap = d
	tb.Cleanup(func() { busyGap = old })
}
