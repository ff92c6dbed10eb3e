package fleet

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nanodems/connector/internal/testwait"
)

// lockedJobs are the relay's jobs that run under a TTL lock
// (relay/jobs.go runLocked): the lease reaper and the stats rollups.
var lockedJobs = []string{"presence-reaper", "HourlyStatsRollup", "DailyStatsRollup", "StatsJanitor"}

// jobTickRec is one "locked job tick" line of a relay's debug log.
type jobTickRec struct {
	at   time.Time
	node string
	n    int
	ran  bool
}

var jobTickLine = regexp.MustCompile(`^time=(\S+) level=DEBUG msg="locked job tick" name=(\S+) holder=(\S+) tick=(\d+) ran=(true|false)$`)

// jobTicks reads the ticks of job name from the relays' logs, in time
// order.
func jobTicks(t *testing.T, relays []*relayProc, name string) []jobTickRec {
	t.Helper()
	var out []jobTickRec
	for _, r := range relays {
		for _, l := range strings.Split(r.log(), "\n") {
			m := jobTickLine.FindStringSubmatch(l)
			if m == nil || m[2] != name {
				continue
			}
			at, err := time.Parse(time.RFC3339Nano, m[1])
			n, err2 := strconv.Atoi(m[4])
			if err != nil || err2 != nil || m[3] != r.node {
				t.Fatalf("%s logged %q", r.node, l)
			}
			out = append(out, jobTickRec{at: at, node: r.node, n: n, ran: m[5] == "true"})
		}
	}
	slices.SortStableFunc(out, func(a, b jobTickRec) int { return a.at.Compare(b.at) })
	return out
}

// oncePerTick checks the relays' record of job name: at every tick of its
// holder the holder ran it, no other relay ran it while the holder lived,
// and the job passed to another relay only after its holder was killed.
// The others must have tried (ticked without running) meanwhile. It
// returns the runs in time order.
func oncePerTick(relays []*relayProc, recs []jobTickRec) ([]jobTickRec, error) {
	byNode := map[string]*relayProc{}
	for _, r := range relays {
		byNode[r.node] = r
	}
	var runs []jobTickRec
	last := map[string]int{} // node → tick number of its last run
	for _, rec := range recs {
		if !rec.ran {
			continue
		}
		if len(runs) > 0 {
			prev := runs[len(runs)-1]
			if rec.node != prev.node {
				k := byNode[prev.node].killedAt
				if k.IsZero() || rec.at.Before(k) {
					return nil, fmt.Errorf("%s ran it at %v while %s, alive, held it (its last run at %v)",
						rec.node, rec.at.Format(time.TimeOnly+".000"), prev.node, prev.at.Format(time.TimeOnly+".000"))
				}
			}
		}
		if n, ok := last[rec.node]; ok && rec.n != n+1 {
			return nil, fmt.Errorf("%s ran it at its ticks %d and %d but not in between", rec.node, n, rec.n)
		}
		last[rec.node] = rec.n
		runs = append(runs, rec)
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("no relay ran it")
	}
	skips := map[string]int{}
	for _, rec := range recs {
		if !rec.ran {
			skips[rec.node]++
		}
	}
	for _, r := range relays {
		if _, ran := last[r.node]; !ran && skips[r.node] < 10 {
			return nil, fmt.Errorf("%s, never the holder, ticked %d times: it did not try", r.node, skips[r.node])
		}
	}
	return runs, nil
}

// lockedJobsFor is how long two relays or more run the locked jobs side
// by side before the check reads their record: 2 minutes of 1 s ticks.
const lockedJobsFor = 2 * time.Minute

// checkLockedJobs reads the relays' record of every locked job once two
// of them have run for lockedJobsFor since since: each job ran once per
// tick (oncePerTick). Then it kills (-9) the relay that holds the lease
// reaper and requires every job it held to be run by another relay within
// one TTL of the kill, at the first tick after the TTL.
func checkLockedJobs(t *testing.T, relays []*relayProc, since time.Time) {
	if wait := time.Until(since.Add(lockedJobsFor)); wait > 0 {
		t.Logf("waiting %v more: the relays run the locked jobs for %v", wait.Round(time.Second), lockedJobsFor)
		time.Sleep(wait)
	}
	byNode := map[string]*relayProc{}
	for _, r := range relays {
		byNode[r.node] = r
	}
	holders := map[string]*relayProc{}
	for _, name := range lockedJobs {
		runs, err := oncePerTick(relays, jobTicks(t, relays, name))
		if err != nil {
			t.Fatalf("locked job %s: %v", name, err)
		}
		h := byNode[runs[len(runs)-1].node]
		if !h.running() {
			t.Fatalf("locked job %s: its last run was by %s, which was killed, and no relay took it over", name, h.node)
		}
		holders[name] = h
		t.Logf("locked job %s: %d runs in %v at %v ticks, each by one relay (%s)", name, len(runs),
			runs[len(runs)-1].at.Sub(runs[0].at).Round(time.Second), jobTick, runners(runs))
	}
	h := holders[lockedJobs[0]]
	h.kill()
	for _, name := range lockedJobs {
		if holders[name] != h {
			continue
		}
		var lastRun, taken jobTickRec
		testwait.For(t, 30*time.Second, name+" taken over after the kill of "+h.node, func() bool {
			for _, rec := range jobTicks(t, relays, name) {
				switch {
				case rec.ran && rec.node == h.node:
					lastRun = rec
				case rec.ran && rec.at.After(h.killedAt):
					taken = rec
					return true
				}
			}
			return false
		})
		took, fromKill := taken.at.Sub(lastRun.at), taken.at.Sub(h.killedAt)
		t.Logf("locked job %s: %s killed (-9); %s ran it %v after the kill, %v after the holder's last run (TTL %v, tick %v)",
			name, h.node, taken.node, fromKill.Round(time.Millisecond), took.Round(time.Millisecond), jobTTL, jobTick)
		// The lock expires one TTL after the holder's last renewal, and the
		// next relay takes it at its first tick after that: not before
		// (the lock would not be exclusive), and within one TTL of the
		// kill plus that tick, with a tick of slack for a loaded machine.
		if took < jobTTL-jobTick/2 {
			t.Fatalf("locked job %s taken over %v after the holder's last run, before its TTL %v", name, took, jobTTL)
		}
		if fromKill > jobTTL+2*jobTick {
			t.Fatalf("locked job %s taken over %v after the kill of its holder, want within its TTL %v and a tick", name, fromKill, jobTTL)
		}
	}
	for _, name := range lockedJobs {
		if _, err := oncePerTick(relays, jobTicks(t, relays, name)); err != nil {
			t.Fatalf("locked job %s, after the takeover: %v", name, err)
		}
	}
}

// runners names the relays that ran a job in turn, e.g. "r1 ×120, then
// r2 ×5".
func runners(runs []jobTickRec) string {
	var parts []string
	n := 0
	for i, r := range runs {
		n++
		if i == len(runs)-1 || runs[i+1].node != r.node {
			parts = append(parts, fmt.Sprintf("%s ×%d", r.node, n))
			n = 0
		}
	}
	return strings.Join(parts, ", then ")
}
