package relay

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/xtaci/smux"

	"github.com/nanodems/connector/mux"
)

// agentSession is one connected agent: its smux session and control stream.
type agentSession struct {
	id, siteID  string
	remote      string
	version     string // the agent's build, from its hello
	connectedAt time.Time
	sess        *smux.Session
	ctrl        *smux.Stream

	wmu sync.Mutex // serialises control writes

	active  atomic.Int64 // tunnels open through the relay right now
	tunnels sync.Map     // smux stream id → *tunnelConn: every open tunnel, shared or dedicated
	tmu     sync.Mutex
	tadded  chan struct{} // closed when a tunnel is added, for waitTunnel; nil while none waits
	// ended is set, under tmu, once the session's tunnels are being cut:
	// a tunnel registered after that would outlive its session.
	ended         bool
	dedicated     atomic.Int64 // tunnels moved to dedicated connections, in total
	heartbeat     atomic.Pointer[heartbeat]
	allowlistHeld atomic.Int64
	today         dayBytes // bytes carried since UTC midnight (daybytes.go)
	features      []string // what the agent supports, from its hello
}

type heartbeat struct {
	mux.Heartbeat
	At time.Time
}

// addTunnel registers c under its stream id, for the agent's dedicated
// connection to find and for closeTunnels to end. It reports false, and
// registers nothing, once the session has ended.
func (a *agentSession) addTunnel(id uint32, c *tunnelConn) bool {
	a.tmu.Lock()
	defer a.tmu.Unlock()
	if a.ended {
		return false
	}
	a.tunnels.Store(id, c)
	if a.tadded != nil {
		close(a.tadded)
		a.tadded = nil
	}
	return true
}

// closeTunnels ends every tunnel of the session, shared or dedicated, and
// returns how many there were. It runs when the session ends for any
// reason (revocation, loss, keepalive timeout): closing the smux session
// ends the shared streams, but a tunnel moved to a dedicated connection
// reads only that connection, and a frozen agent never closes it (one
// stayed open 146 s after its session was dropped).
func (a *agentSession) closeTunnels() int {
	a.tmu.Lock()
	a.ended = true
	a.tmu.Unlock()
	n := 0
	a.tunnels.Range(func(_, v any) bool {
		v.(*tunnelConn).cut()
		n++
		return true
	})
	return n
}

// waitTunnel returns the tunnel of stream id, waiting up to d for it to be
// registered: the agent can dial a dedicated connection for a tunnel the
// moment it has read the tunnel's header, before the relay's opener has
// run again to register it (seen under load in TestDedicatedAtOpen).
func (a *agentSession) waitTunnel(id uint32, d time.Duration) (*tunnelConn, bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		a.tmu.Lock()
		if v, ok := a.tunnels.Load(id); ok {
			a.tmu.Unlock()
			return v.(*tunnelConn), true
		}
		if a.tadded == nil {
			a.tadded = make(chan struct{})
		}
		added := a.tadded
		a.tmu.Unlock()
		select {
		case <-added:
		case <-timer.C:
			return nil, false
		}
	}
}

func (a *agentSession) send(t mux.MsgType, v any) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	a.ctrl.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return mux.WriteMessage(a.ctrl, t, v)
}

// registry indexes the connected agents of this relay by id and by site.
type registry struct {
	mu     sync.RWMutex
	byID   map[string]*agentSession
	bySite map[string]map[string]*agentSession
}

func newRegistry() *registry {
	return &registry{byID: map[string]*agentSession{}, bySite: map[string]map[string]*agentSession{}}
}

// add registers a and returns the session it replaces, if any (an agent
// that reconnected before its old session timed out).
func (r *registry) add(a *agentSession) (old *agentSession) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old = r.byID[a.id]
	if old != nil {
		delete(r.bySite[old.siteID], old.id)
	}
	r.byID[a.id] = a
	if r.bySite[a.siteID] == nil {
		r.bySite[a.siteID] = map[string]*agentSession{}
	}
	r.bySite[a.siteID][a.id] = a
	return old
}

// remove unregisters a if it is still the current session of its agent.
func (r *registry) remove(a *agentSession) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byID[a.id] != a {
		return
	}
	delete(r.byID, a.id)
	delete(r.bySite[a.siteID], a.id)
	if len(r.bySite[a.siteID]) == 0 {
		delete(r.bySite, a.siteID)
	}
}

// count is how many agents have a session here.
func (r *registry) count() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.byID)
}

func (r *registry) get(id string) *agentSession {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byID[id]
}

// leastLoaded picks the site's online agent with the fewest active
// tunnels, ties broken by id (spec 002 §4: OrderBy(ActiveStreams)
// ThenBy(AgentId)).
func (r *registry) leastLoaded(siteID string) *agentSession {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var best *agentSession
	var bestN int64
	for _, a := range r.bySite[siteID] {
		n := a.active.Load()
		if best == nil || n < bestN || (n == bestN && a.id < best.id) {
			best, bestN = a, n
		}
	}
	return best
}

func (r *registry) site(siteID string) []*agentSession {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*agentSession, 0, len(r.bySite[siteID]))
	for _, a := range r.bySite[siteID] {
		out = append(out, a)
	}
	return out
}

func (r *registry) closeAll() {
	r.mu.RLock()
	all := make([]*agentSession, 0, len(r.byID))
	for _, a := range r.byID {
		all = append(all, a)
	}
	r.mu.RUnlock()
	for _, a := range all {
		a.sess.Close()
	}
}
