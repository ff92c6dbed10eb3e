//go:build race

package pipe_test

// raceEnabled: under the race detector sync.Pool drops a quarter of what
// is Put, so a pooled buffer is sometimes allocated afresh.
const raceEnabled = true
