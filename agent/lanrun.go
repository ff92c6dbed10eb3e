package agent

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nanodems/connector/mux"
)

// LAN runs: a discovery or a probe the relay asked for on the control
// stream. A run streams what it finds in RunResult messages and ends with
// one RunDone; it ends early when the session does.

// maxLANRuns bounds the runs an agent does at once; one more is answered
// at once with a RunDone that says so.
const maxLANRuns = 2

// lanRuns tracks the runs of one session.
type lanRuns struct {
	wg      sync.WaitGroup
	running atomic.Int32
	done    <-chan struct{} // the session's end
}

// startRun starts the run a MsgDiscover or MsgProbe asks for.
func (a *Agent) startRun(c *controlConn, t mux.MsgType, body []byte) {
	var disc mux.DiscoverRequest
	var probe mux.ProbeRequest
	var runID string
	var err error
	if t == mux.MsgDiscover {
		err = mux.Decode(body, &disc)
		runID = disc.RunID
	} else {
		err = mux.Decode(body, &probe)
		runID = probe.RunID
	}
	if err != nil {
		a.log.Warn("bad LAN run request", "type", t, "err", err)
		c.send(mux.MsgRunDone, mux.RunDone{RunID: runID, Error: err.Error()})
		return
	}
	if c.runs.running.Add(1) > maxLANRuns {
		c.runs.running.Add(-1)
		c.send(mux.MsgRunDone, mux.RunDone{RunID: runID, Error: fmt.Sprintf("agent busy: %d discoveries or probes are running; try again when one ends", maxLANRuns)})
		return
	}
	c.runs.wg.Add(1)
	go func() {
		defer c.runs.wg.Done()
		defer c.runs.running.Add(-1)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-c.runs.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		rep := newReporter(c.send, runID)
		var err error
		if t == mux.MsgDiscover {
			a.log.Info("discovery", "run", runID)
			err = a.discover(ctx, disc, rep)
		} else {
			a.log.Info("probe", "run", runID, "range", probe.Range, "ports", probe.Ports)
			err = a.probe(ctx, probe, rep)
		}
		rep.finish(err)
		if err != nil {
			a.log.Warn("LAN run", "run", runID, "err", err)
		}
	}()
}

// reportEvery is how often a run sends what it found since the last
// RunResult: often enough for a page to fill in "within seconds", seldom
// enough that a /22 is a few dozen messages.
const reportEvery = 250 * time.Millisecond

// reporter batches a run's findings into RunResult messages.
type reporter struct {
	send  func(mux.MsgType, any) error // the control stream's
	runID string

	mu          sync.Mutex
	pending     []mux.Found
	found       int
	done, total int
	dirty       bool

	stop chan struct{}
	wg   sync.WaitGroup
}

func newReporter(send func(mux.MsgType, any) error, runID string) *reporter {
	r := &reporter{send: send, runID: runID, stop: make(chan struct{})}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(reportEvery)
		defer t.Stop()
		for {
			select {
			case <-r.stop:
				return
			case <-t.C:
				r.flush()
			}
		}
	}()
	return r
}

// add reports one host; beyond mux.MaxRunFound hosts it is dropped.
func (r *reporter) add(f mux.Found) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.found == mux.MaxRunFound {
		return
	}
	r.found++
	r.pending = append(r.pending, f)
	r.dirty = true
}

// progress sets how far the run is.
func (r *reporter) progress(done, total int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done, r.total, r.dirty = done, total, true
}

func (r *reporter) flush() {
	r.mu.Lock()
	if !r.dirty {
		r.mu.Unlock()
		return
	}
	msg := mux.RunResult{RunID: r.runID, Found: r.pending, Done: r.done, Total: r.total}
	r.pending, r.dirty = nil, false
	r.mu.Unlock()
	r.send(mux.MsgRunResult, msg) // a failed send: the session is ending
}

// finish sends what is left and the run's RunDone.
func (r *reporter) finish(err error) {
	close(r.stop)
	r.wg.Wait()
	r.flush()
	d := mux.RunDone{RunID: r.runID}
	r.mu.Lock()
	d.Done, d.Total = r.done, r.total
	r.mu.Unlock()
	if err != nil {
		d.Error = err.Error()
	}
	r.send(mux.MsgRunDone, d)
}
