package relay

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/nanodems/connector/mux"
)

// The relay's runs are bounded: runs per site (the oldest ended one makes
// room; all running is a 429), hosts per run, and time after the end; a
// run takes messages only from its own agent.
func TestLANRunBounds(t *testing.T) {
	l := newLANRuns()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range maxSiteRuns {
		if err := l.add(&lanRun{ID: fmt.Sprint("r", i), SiteID: "s1", AgentID: "a1", State: "running", Started: t0}, t0); err != nil {
			t.Fatal(err)
		}
	}
	err := l.add(&lanRun{ID: "more", SiteID: "s1", State: "running", Started: t0}, t0)
	var tl *tryLaterError
	if !errors.As(err, &tl) || tl.code != http.StatusTooManyRequests {
		t.Fatalf("a ninth running run: %v", err)
	}
	if err := l.add(&lanRun{ID: "other-site", SiteID: "s2", State: "running", Started: t0}, t0); err != nil {
		t.Fatalf("another site's run: %v", err)
	}

	// Messages of another agent, or for an ended run, are dropped.
	if _, ok := l.update("a2", "r0", func(r *lanRun) { r.Done = 99 }); ok {
		t.Error("agent a2 updated agent a1's run")
	}
	l.update("a1", "r0", func(r *lanRun) { r.State, r.Ended = "done", t0.Add(time.Second) })
	l.update("a1", "r1", func(r *lanRun) { r.State, r.Ended = "done", t0.Add(2*time.Second) })
	if _, ok := l.update("a1", "r0", func(r *lanRun) { r.Done = 99 }); ok {
		t.Error("an ended run was updated")
	}
	// Room is made by dropping the oldest ended run.
	if err := l.add(&lanRun{ID: "next", SiteID: "s1", State: "running", Started: t0}, t0.Add(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.get("s1", "r0", t0.Add(3*time.Second)); ok {
		t.Error("the oldest ended run is still kept")
	}
	if _, ok := l.get("s1", "r1", t0.Add(3*time.Second)); !ok {
		t.Error("the newer ended run was dropped")
	}
	if _, ok := l.get("s2", "r1", t0.Add(3*time.Second)); ok {
		t.Error("a run is readable under another site")
	}
	// Ended runs go after runTTL; running ones fail after runMaxAge.
	later := t0.Add(runMaxAge + time.Minute)
	r2, ok := l.get("s1", "r2", later)
	if !ok || r2.State != "failed" || r2.Error == "" {
		t.Errorf("a run past its age: %+v", r2)
	}
	if _, ok := l.get("s1", "r1", t0.Add(2*time.Second+runTTL+time.Second)); ok {
		t.Error("an ended run outlived its TTL")
	}

	// Hosts merge by address, within mux.MaxRunFound.
	var r lanRun
	r.addFound([]mux.Found{{Host: "10.0.0.1", Ports: []int{80}}})
	r.addFound([]mux.Found{{Host: "10.0.0.1", Ports: []int{554, 80}}})
	if len(r.Found) != 1 || fmt.Sprint(r.Found[0].Ports) != "[80 554]" {
		t.Errorf("merged %+v", r.Found)
	}
	var flood []mux.Found
	for i := range mux.MaxRunFound + 100 {
		flood = append(flood, mux.Found{Host: fmt.Sprintf("10.1.%d.%d", i/256, i%256)})
	}
	r.addFound(flood)
	if len(r.Found) != mux.MaxRunFound {
		t.Errorf("a run kept %d hosts, want at most %d", len(r.Found), mux.MaxRunFound)
	}
}
