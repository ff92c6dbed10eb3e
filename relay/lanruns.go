package relay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nanodems/connector/mux"
	"github.com/nanodems/connector/relay/store"
)

// LAN runs (discoveries and probes) as the relay keeps them: it asks an
// agent of the site over the control stream (mux/control_discover.go),
// and the agent streams what it finds back. Runs live in memory only,
// bounded: mux.MaxRunFound hosts per run, maxSiteRuns runs per site, and
// runTTL once a run has ended. They are for the operator who started
// them to pick from, not a record: the audit log keeps who ran what.

const (
	// maxSiteRuns bounds the runs a site keeps; a new run evicts the
	// oldest ended one, and is refused while all are running.
	maxSiteRuns = 8
	// runTTL is how long an ended run's results stay readable.
	runTTL = 15 * time.Minute
	// runMaxAge fails a run the agent has not ended by then: a probe of a
	// /22 at the agent's bounds ends in about a minute.
	runMaxAge = 10 * time.Minute
)

// Run kinds.
const (
	runDiscovery = "discovery"
	runProbe     = "probe"
)

// lanRun is one run and what it found so far.
type lanRun struct {
	ID, SiteID, TenantID, AgentID string
	Kind                          string
	Range                         string // a probe's
	Ports                         []int  // a probe's
	Actor                         string
	Started, Ended                time.Time
	State                         string // "running", "done", "failed"
	Error                         string
	Done, Total                   int
	Found                         []mux.Found
}

// lanRuns is the relay's runs, by id.
type lanRuns struct {
	mu   sync.Mutex
	byID map[string]*lanRun
}

func newLANRuns() *lanRuns { return &lanRuns{byID: map[string]*lanRun{}} }

// prune drops runs past their TTL and fails runs past their age; it runs
// under mu.
func (l *lanRuns) prune(now time.Time) {
	for id, r := range l.byID {
		if r.State == "running" && now.Sub(r.Started) > runMaxAge {
			r.State, r.Error, r.Ended = "failed", "the agent did not end the run in time", now
		}
		if r.State != "running" && now.Sub(r.Ended) > runTTL {
			delete(l.byID, id)
		}
	}
}

// add registers r, evicting the site's oldest ended run when it has
// maxSiteRuns.
func (l *lanRuns) add(r *lanRun, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.prune(now)
	var site []*lanRun
	for _, o := range l.byID {
		if o.SiteID == r.SiteID {
			site = append(site, o)
		}
	}
	if len(site) >= maxSiteRuns {
		ended := slices.DeleteFunc(site, func(o *lanRun) bool { return o.State == "running" })
		if len(ended) == 0 {
			return &tryLaterError{code: 429, after: 10 * time.Second, msg: fmt.Sprintf("site %s has %d discoveries or probes running; try again when one ends", r.SiteID, maxSiteRuns)}
		}
		oldest := slices.MinFunc(ended, func(a, b *lanRun) int { return a.Ended.Compare(b.Ended) })
		delete(l.byID, oldest.ID)
	}
	l.byID[r.ID] = r
	return nil
}

// get returns a copy of run id of site siteID.
func (l *lanRuns) get(siteID, id string, now time.Time) (lanRun, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.prune(now)
	r, ok := l.byID[id]
	if !ok || r.SiteID != siteID {
		return lanRun{}, false
	}
	c := *r
	c.Found = slices.Clone(r.Found)
	return c, true
}

// update applies fn to the running run id of agent agentID; messages
// about another agent's runs, or ended ones, are dropped. It reports
// the run as it is after fn, and whether fn ran.
func (l *lanRuns) update(agentID, id string, fn func(r *lanRun)) (lanRun, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.byID[id]
	if !ok || r.AgentID != agentID || r.State != "running" {
		return lanRun{}, false
	}
	fn(r)
	return *r, true
}

// addFound merges fs into r's results, a host once, within the bound.
func (r *lanRun) addFound(fs []mux.Found) {
	for _, f := range fs {
		i := slices.IndexFunc(r.Found, func(o mux.Found) bool { return o.Host == f.Host })
		switch {
		case i >= 0:
			for _, p := range f.Ports {
				if !slices.Contains(r.Found[i].Ports, p) {
					r.Found[i].Ports = append(r.Found[i].Ports, p)
				}
			}
		case len(r.Found) < mux.MaxRunFound:
			r.Found = append(r.Found, f)
		}
	}
}

// errAgentTooOld answers a run asked of a site whose agents predate LAN
// runs: 409, with the versions, so the operator knows to update.
type errAgentTooOld struct{ msg string }

func (e *errAgentTooOld) Error() string        { return e.msg }
func (e *errAgentTooOld) Is(target error) bool { return target == store.ErrConflict }

// startLANRun asks an agent of site that knows LAN runs to run r (its
// kind, range, ports and actor set), registers it and returns it as
// started. The request goes out only once the run is registered, so no
// result is lost.
func (s *Server) startLANRun(ctx context.Context, site store.Site, r lanRun) (lanRun, error) {
	var agent *agentSession
	var old []string
	for _, a := range s.agents.site(site.ID) {
		if slices.Contains(a.features, mux.FeatureLANRuns) {
			if agent == nil || a.active.Load() < agent.active.Load() {
				agent = a
			}
		} else {
			old = append(old, fmt.Sprintf("%s (version %s)", a.id, a.version))
		}
	}
	if agent == nil && len(old) > 0 {
		return r, &errAgentTooOld{fmt.Sprintf("the agent of site %s is too old to discover or probe: %v; update nanodems-agent", site.ID, old)}
	}
	if agent == nil {
		return r, fmt.Errorf("%w: no agent of site %s is online to run a %s", ErrAgentOffline, site.ID, r.Kind)
	}
	now := s.cfg.Now()
	r.ID, r.SiteID, r.TenantID, r.AgentID = newID("run_"), site.ID, site.TenantID, agent.id
	r.Started, r.State = now, "running"
	kept := r // from here on, the agent's messages update the registered copy
	if err := s.runs.add(&kept, now); err != nil {
		return r, err
	}
	var err error
	if r.Kind == runDiscovery {
		err = agent.send(mux.MsgDiscover, mux.DiscoverRequest{RunID: r.ID})
	} else {
		err = agent.send(mux.MsgProbe, mux.ProbeRequest{RunID: r.ID, Range: r.Range, Ports: r.Ports})
	}
	if err != nil {
		s.runs.update(agent.id, r.ID, func(r *lanRun) { r.State, r.Error, r.Ended = "failed", "could not reach the agent: "+err.Error(), now })
		return r, fmt.Errorf("%w: sending the %s to agent %s: %v", ErrAgentOffline, r.Kind, agent.id, err)
	}
	detail := fmt.Sprintf("site %s, agent %s", site.ID, agent.id)
	if r.Kind == runProbe {
		detail = fmt.Sprintf("range %s ports %v, %s", r.Range, r.Ports, detail)
	}
	s.audit(store.AuditEvent{TenantID: site.TenantID, Actor: r.Actor, Action: "lan." + r.Kind, Target: r.ID, Detail: detail})
	return r, nil
}

// lanRun returns a copy of run id of site siteID.
func (s *Server) lanRun(siteID, id string) (lanRun, bool) {
	return s.runs.get(siteID, id, s.cfg.Now())
}

// onRunResult takes an agent's RunResult.
func (s *Server) onRunResult(a *agentSession, m mux.RunResult) {
	s.runs.update(a.id, m.RunID, func(r *lanRun) {
		r.addFound(m.Found)
		r.Done, r.Total = m.Done, m.Total
	})
}

// onRunDone ends a run and audits what it found.
func (s *Server) onRunDone(a *agentSession, m mux.RunDone) {
	r, ok := s.runs.update(a.id, m.RunID, func(r *lanRun) {
		r.Done, r.Total, r.Ended = m.Done, m.Total, s.cfg.Now()
		r.State, r.Error = "done", m.Error
		if m.Error != "" {
			r.State = "failed"
		}
	})
	if ok {
		s.auditRunEnd(r)
	}
}

func (s *Server) auditRunEnd(r lanRun) {
	detail := fmt.Sprintf("%d hosts found", len(r.Found))
	if r.Kind == runProbe {
		detail = fmt.Sprintf("range %s: %d of %d addresses probed, %d answered", r.Range, r.Done, r.Total, len(r.Found))
	}
	if r.Error != "" {
		detail += "; failed: " + r.Error
	}
	s.audit(store.AuditEvent{TenantID: r.TenantID, Actor: r.Actor, Action: "lan." + r.Kind + ".end", Target: r.ID, Detail: detail})
}

// endAgentRuns fails the running runs of an agent whose session ended.
func (s *Server) endAgentRuns(a *agentSession) {
	s.runs.mu.Lock()
	var ended []lanRun
	for _, r := range s.runs.byID {
		if r.AgentID == a.id && r.State == "running" {
			r.State, r.Error, r.Ended = "failed", "the agent disconnected before the run ended", s.cfg.Now()
			ended = append(ended, *r)
		}
	}
	s.runs.mu.Unlock()
	for _, r := range ended {
		s.auditRunEnd(r)
	}
}

// decodeRun is readControl's handling of the run messages.
func (s *Server) decodeRun(a *agentSession, t mux.MsgType, body []byte) error {
	switch t {
	case mux.MsgRunResult:
		var m mux.RunResult
		if err := mux.Decode(body, &m); err != nil {
			return err
		}
		s.onRunResult(a, m)
	case mux.MsgRunDone:
		var m mux.RunDone
		if err := mux.Decode(body, &m); err != nil {
			return err
		}
		s.onRunDone(a, m)
	default:
		return errors.New("not a run message")
	}
	return nil
}
