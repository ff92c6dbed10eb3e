package rollup

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nanodems/connector/mux"
	"github.com/nanodems/connector/relay/store"
)

// WriteEvery is how often the Recorder writes an agent's samples: the
// counters are running totals, so a skipped heartbeat loses nothing, and
// writing every sixth heartbeat of a busy agent rather than every one
// keeps the store's write rate down. A sample is also written at the
// first heartbeat of a new UTC hour, so an hour's bytes stay in it.
const WriteEvery = 30 * time.Second

// Recorder keeps the newest counters of each agent's ports and writes
// them to the store as samples. One per relay.
type Recorder struct {
	store store.Store
	log   *slog.Logger

	mu     sync.Mutex
	agents map[string]*pending
}

type pending struct {
	written time.Time // when the last samples were written
	ports   map[portID]store.StatSample
}

type portID struct {
	host string
	port uint16
}

// NewRecorder returns a Recorder writing to st.
func NewRecorder(st store.Store, log *slog.Logger) *Recorder {
	return &Recorder{store: st, log: log, agents: make(map[string]*pending)}
}

// Record takes one heartbeat's counters of agentID, received at now. It
// writes the agent's pending samples when WriteEvery has passed since its
// last write or the UTC hour has changed.
func (r *Recorder) Record(ctx context.Context, agentID string, now time.Time, st *mux.AgentStats) {
	if st == nil || st.Epoch == "" {
		return // an agent that predates per-port counters
	}
	r.mu.Lock()
	p := r.agents[agentID]
	if p == nil {
		// The first heartbeat starts the clock: it is written at the
		// next write, with what came after it.
		p = &pending{written: now, ports: make(map[portID]store.StatSample)}
		r.agents[agentID] = p
	}
	for _, ps := range st.Ports {
		p.ports[portID{ps.Host, ps.Port}] = store.StatSample{
			AgentID: agentID, Host: ps.Host, Port: ps.Port, Epoch: st.Epoch, Boot: int64(st.Boot), At: now,
			Totals: Counts(ps.Totals), Base: Counts(ps.Base),
		}
	}
	var out []store.StatSample
	if now.Sub(p.written) >= WriteEvery || now.Truncate(time.Hour) != p.written.Truncate(time.Hour) {
		out = p.take(now)
	}
	r.mu.Unlock()
	r.write(ctx, agentID, out)
}

// End writes what is pending of agentID, whose session has ended.
func (r *Recorder) End(ctx context.Context, agentID string) {
	r.mu.Lock()
	var out []store.StatSample
	if p := r.agents[agentID]; p != nil {
		out = p.take(time.Time{})
		delete(r.agents, agentID)
	}
	r.mu.Unlock()
	r.write(ctx, agentID, out)
}

// Flush writes everything pending: the relay is stopping.
func (r *Recorder) Flush(ctx context.Context) {
	r.mu.Lock()
	all := make(map[string][]store.StatSample, len(r.agents))
	for id, p := range r.agents {
		all[id] = p.take(time.Time{})
	}
	r.mu.Unlock()
	for id, out := range all {
		r.write(ctx, id, out)
	}
}

func (p *pending) take(now time.Time) []store.StatSample {
	out := make([]store.StatSample, 0, len(p.ports))
	for k, s := range p.ports {
		out = append(out, s)
		delete(p.ports, k)
	}
	if !now.IsZero() {
		p.written = now
	}
	return out
}

func (r *Recorder) write(ctx context.Context, agentID string, out []store.StatSample) {
	if len(out) == 0 {
		return
	}
	if err := r.store.AddStatSamples(ctx, out); err != nil {
		// The next write's running totals carry these bytes too.
		r.log.Warn("writing agent stats", "agent", agentID, "err", err)
	}
}

// Counts is the store's form of an agent's counters.
func Counts(t mux.StatTotals) store.StatCounts {
	return store.StatCounts{
		BytesIn: int64(t.BytesIn), BytesOut: int64(t.BytesOut), OpenedOK: int64(t.OpenedOK), Refused: int64(t.Refused),
		Unreachable: int64(t.Unreachable), NotAllowed: int64(t.NotAllowed), Dedicated: int64(t.Dedicated),
	}
}
