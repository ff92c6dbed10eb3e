package gctune

import (
	"os"
	"runtime/debug"
	"testing"
)

func TestApply(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))

	// An operator's GOGC, even empty, wins.
	t.Setenv("GOGC", "")
	debug.SetGCPercent(100)
	Apply()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC set: Apply changed the target to %d", got)
	}

	// Unset (t.Setenv above restores it at the end).
	if err := os.Unsetenv("GOGC"); err != nil {
		t.Fatal(err)
	}
	Apply()
	if got := debug.SetGCPercent(100); got != Percent {
		t.Errorf("GOGC unset: target %d after Apply, want %d", got, Percent)
	}
}
