package stats

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/nanodems/connector/mux"
)

// FileName is the counters' file in the agent's state directory.
const FileName = "stats.json"

// FlushEvery is how often a running agent writes its counters: at most
// that much counting is lost when the host loses power.
const FlushEvery = 30 * time.Second

// Set is the counters of every device port an agent has opened a tunnel
// to, since its epoch.
type Set struct {
	path string
	now  func() time.Time

	mu    sync.Mutex
	epoch string
	boot  uint64
	ports map[string]*Port // by host:port
}

// file is the JSON of stats.json.
type file struct {
	Epoch string     `json:"epoch"`
	Boot  uint64     `json:"boot"`
	Saved time.Time  `json:"saved"`
	Ports []filePort `json:"ports"`
}

type filePort struct {
	Host   string `json:"host"`
	Port   uint16 `json:"port"`
	Totals Totals `json:"totals"`
	Day    string `json:"day"`  // the UTC date Day0 was taken
	Day0   Totals `json:"day0"` // the totals at the start of Day
}

// Open loads the counters from path, or starts a new epoch when there is
// no file, and counts one more boot; it writes the file at once, so the
// next start is a boot of its own even if this one dies before a flush.
// now is the clock (time.Now when nil). A file that cannot be read is an
// error, not a reset: the operator must see why the counters restarted.
func Open(path string, now func() time.Time) (*Set, error) {
	if now == nil {
		now = time.Now
	}
	s := &Set{path: path, now: now, ports: make(map[string]*Port)}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		var e [8]byte
		rand.Read(e[:])
		s.epoch = now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(e[:])
	case err != nil:
		return nil, fmt.Errorf("read agent stats: %w", err)
	default:
		var f file
		if err := json.Unmarshal(b, &f); err != nil {
			return nil, fmt.Errorf("read agent stats %s: %w", path, err)
		}
		if f.Epoch == "" {
			return nil, fmt.Errorf("read agent stats %s: no epoch", path)
		}
		s.epoch, s.boot = f.Epoch, f.Boot
		for _, fp := range f.Ports {
			p := &Port{Host: fp.Host, Port: fp.Port, base: fp.Totals, day0: fp.Day0, day: fp.Day}
			p.set(fp.Totals)
			s.ports[key(fp.Host, fp.Port)] = p
		}
	}
	s.boot++
	if err := s.Save(nil); err != nil {
		return nil, err
	}
	return s, nil
}

func key(host string, port uint16) string { return net.JoinHostPort(host, strconv.Itoa(int(port))) }

// Epoch and Boot name the counters' run (mux.AgentStats).
func (s *Set) Epoch() string { return s.epoch }

// Boot is the number of this start within the epoch.
func (s *Set) Boot() uint64 { return s.boot }

// Port returns the counters of host:port, made on first use.
func (s *Set) Port(host string, port uint16) *Port {
	k := key(host, port)
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.ports[k]
	if p == nil {
		p = &Port{Host: host, Port: port, day: s.now().UTC().Format(time.DateOnly)}
		s.ports[k] = p
	}
	return p
}

// Live yields the bytes of tunnels still open, not yet added to their
// port's Counter; nil when there are none to add.
type Live func(yield func(p *Port, in, out uint64))

// Snapshot is every port's counters, live bytes included, sorted by
// host:port. It rolls each port's day over at UTC midnight.
func (s *Set) Snapshot(live Live) mux.AgentStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.snapshot(live)
	out := mux.AgentStats{Epoch: s.epoch, Boot: s.boot, Full: true, Ports: make([]mux.PortStats, 0, len(ps))}
	for _, p := range ps {
		out.Ports = append(out.Ports, p.PortStats)
	}
	return out
}

type portSnap struct {
	mux.PortStats
	day  string
	day0 Totals
}

func (s *Set) snapshot(live Live) []portSnap {
	extra := make(map[*Port]Totals)
	if live != nil {
		live(func(p *Port, in, out uint64) {
			t := extra[p]
			t.BytesIn += in
			t.BytesOut += out
			extra[p] = t
		})
	}
	today := s.now().UTC().Format(time.DateOnly)
	out := make([]portSnap, 0, len(s.ports))
	for _, p := range s.ports {
		tot := p.totals().Add(extra[p])
		if p.day != today {
			p.day, p.day0 = today, tot
		}
		out = append(out, portSnap{PortStats: mux.PortStats{Host: p.Host, Port: p.Port, Totals: tot, Base: p.base, Today: tot.Sub(p.day0), Active: p.active.Load()}, day: p.day, day0: p.day0})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Host != out[j].Host {
			return out[i].Host < out[j].Host
		}
		return out[i].Port < out[j].Port
	})
	return out
}

// Save writes the counters, live bytes included, to the file: a temporary
// file in the same directory, synced, then renamed over the old one, so a
// crash leaves either the old file or the new, never half of one.
func (s *Set) Save(live Live) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := file{Epoch: s.epoch, Boot: s.boot, Saved: s.now().UTC(), Ports: []filePort{}}
	for _, p := range s.snapshot(live) {
		f.Ports = append(f.Ports, filePort{Host: p.Host, Port: p.Port, Totals: p.Totals, Day: p.day, Day0: p.day0})
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encode agent stats: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), ".stats-*.json")
	if err != nil {
		return fmt.Errorf("write agent stats: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a rename: a no-op
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write agent stats: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write agent stats: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write agent stats: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("write agent stats: %w", err)
	}
	return nil
}
