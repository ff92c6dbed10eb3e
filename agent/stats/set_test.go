package stats

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nanodems/connector/mux"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// TestSetSurvivesRestart proves the counters a restart reads back are the
// ones written, live bytes included; that each start is a boot of its own
// whose Base is the totals it started from; and that "today" carries over
// a restart within the day and starts again at zero the next day.
func TestSetSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	c := &clock{time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	s, err := Open(path, c.now)
	if err != nil {
		t.Fatal(err)
	}
	if s.Boot() != 1 || s.Epoch() == "" {
		t.Fatalf("first open: boot %d epoch %q", s.Boot(), s.Epoch())
	}
	cam := s.Port("10.0.0.5", 554)
	var _ Counter = cam
	cam.Open(Opened)
	cam.Open(Refused)
	cam.Open(Unreachable)
	cam.Open(NotAllowed)
	cam.Moved()
	cam.Add(1000, 10)
	end := cam.Begin()
	live := func(yield func(p *Port, in, out uint64)) { yield(cam, 500, 5) }
	snap := s.Snapshot(live)
	want := Totals{BytesIn: 1500, BytesOut: 15, OpenedOK: 1, Refused: 1, Unreachable: 1, NotAllowed: 1, Dedicated: 1}
	if len(snap.Ports) != 1 || snap.Ports[0].Totals != want || snap.Ports[0].Active != 1 || snap.Ports[0].Today != want {
		t.Fatalf("snapshot %+v, want totals and today %+v, active 1", snap.Ports, want)
	}
	end()
	if err := s.Save(live); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".stats-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}

	c.t = c.t.Add(time.Hour)
	s2, err := Open(path, c.now)
	if err != nil {
		t.Fatal(err)
	}
	if s2.Epoch() != s.Epoch() || s2.Boot() != 2 {
		t.Fatalf("reopen: epoch %q boot %d, want %q boot 2", s2.Epoch(), s2.Boot(), s.Epoch())
	}
	s2.Port("10.0.0.5", 554).Add(100, 0)
	p := s2.Snapshot(nil).Ports[0]
	if p.Base != want || p.Totals.BytesIn != 1600 || p.Today.BytesIn != 1600 || p.Active != 0 {
		t.Fatalf("after restart %+v: want base %+v, totals and today in 1600, none active", p, want)
	}

	c.t = time.Date(2026, 3, 2, 0, 0, 1, 0, time.UTC)
	s2.Port("10.0.0.5", 554).Add(7, 0)
	p = s2.Snapshot(nil).Ports[0]
	if p.Today.BytesIn != 0 || p.Totals.BytesIn != 1607 {
		t.Fatalf("next day %+v: today restarts at the first look after midnight, totals go on", p)
	}
}

// TestOpenRefusesBadFile proves a damaged stats.json is an error that
// names the file, not a silent reset of the counters.
func TestOpenRefusesBadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	os.WriteFile(path, []byte("{not json"), 0o600)
	if _, err := Open(path, nil); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("open of a damaged file: %v", err)
	}
}

// TestChangesSendsOnlyWhatMoved proves a session's first snapshot goes
// out whole and the next ones carry only the ports that changed.
func TestChangesSendsOnlyWhatMoved(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), FileName), nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := s.Port("10.0.0.1", 80), s.Port("10.0.0.2", 80)
	a.Add(1, 1)
	b.Add(2, 2)
	var c Changes
	if got := c.Next(s.Snapshot(nil)); !got.Full || len(got.Ports) != 2 {
		t.Fatalf("first: %+v", got)
	}
	if got := c.Next(s.Snapshot(nil)); got.Full || len(got.Ports) != 0 {
		t.Fatalf("nothing moved: %+v", got)
	}
	b.Add(1, 0)
	got := c.Next(s.Snapshot(nil))
	if len(got.Ports) != 1 || got.Ports[0].Host != "10.0.0.2" || got.Ports[0].Totals != (mux.StatTotals{BytesIn: 3, BytesOut: 2}) {
		t.Fatalf("one moved: %+v", got)
	}
}
