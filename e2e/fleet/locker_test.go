package fleet

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nanodems/connector/relay/store"
)

// The locked job's tick and TTL in the locker processes: short, so that a
// takeover fits the test; docs/ha.md has the production values.
const (
	lockTick = 100 * time.Millisecond
	lockTTL  = time.Second
	lockName = "e2e-job"
)

// runLocker is the test binary as a "relay job runner": with
// NANODEMS_E2E_LOCKER set to a holder name it ticks on the store of
// $NANODEMS_DATABASE as relay/jobs.go's runLocked does (TryLock at every
// tick, run the job only while holding the lock) and prints one line per
// tick ("run" or "skip" and the time), until it is killed. relay.Server's own locked jobs tick every
// minute with no flag to shorten them, so the check drives the same store
// call from processes of its own.
func runLocker(holder string) {
	ctx := context.Background()
	st, err := store.Open(ctx, os.Getenv("NANODEMS_DATABASE"), store.PostgresOptions{MaxConns: 2})
	if err != nil {
		fmt.Fprintln(os.Stderr, "locker:", err)
		os.Exit(1)
	}
	for range time.Tick(lockTick) {
		ok, err := st.TryLock(ctx, lockName, holder, lockTTL, time.Now())
		if err != nil {
			fmt.Fprintln(os.Stderr, "locker:", err)
			continue
		}
		if ok {
			fmt.Printf("run %d\n", time.Now().UnixNano())
		} else {
			fmt.Printf("skip %d\n", time.Now().UnixNano())
		}
	}
}

// lockRuns reads the times of the ticks at which a locker ran the job.
func lockRuns(t *testing.T, p *proc) []time.Time { return lockTicks(t, p, "run ") }

// lockSkips reads the times of the ticks at which it did not.
func lockSkips(t *testing.T, p *proc) []time.Time { return lockTicks(t, p, "skip ") }

func lockTicks(t *testing.T, p *proc, prefix string) []time.Time {
	t.Helper()
	var runs []time.Time
	for _, l := range strings.Split(p.log(), "\n") {
		ns, ok := strings.CutPrefix(l, prefix)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(ns, 10, 64)
		if err != nil {
			t.Fatalf("locker %s printed %q", p.name, l)
		}
		runs = append(runs, time.Unix(0, n))
	}
	return runs
}
