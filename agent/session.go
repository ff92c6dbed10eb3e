package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/xtaci/smux"

	"github.com/nanodems/connector/internal/backoff"
	"github.com/nanodems/connector/mux"
)

// link is the session a tunnel came on: the relay it belongs to, where
// a dedicated connection for it must go.
type link struct {
	sess *smux.Session
	at   netip.AddrPort // the relay address the session is connected to
}

// Run connects and reconnects until ctx ends or the relay refuses the
// agent for good. A lost relay is retried with jittered backoff
// (internal/backoff) across every relay address, the last one tried
// last; a relay that asks the agent to move (it is draining) is left at
// once, its session kept for the tunnels it still carries.
func (a *Agent) Run(ctx context.Context) error {
	count := a.openCounter()
	a.count.Store(count)
	defer func() { // after the sessions left behind (deferred below) end
		a.count.Store(nil)
		count.Close()
	}()
	// The counters are saved every stats.FlushEvery and once more on the
	// way out, after the sessions left behind have ended (the deferred
	// calls run last first), so the last tunnels' bytes are in the file.
	statsCtx, stopStats := context.WithCancel(context.Background())
	statsDone := make(chan struct{})
	go func() {
		defer close(statsDone)
		a.keepStats(statsCtx)
	}()
	defer func() { <-statsDone }()
	defer stopStats()
	if a.cfg.MetricsAddr != "" {
		stop, err := a.serveMetrics()
		if err != nil {
			return err
		}
		defer stop()
	}
	var moving sync.WaitGroup // sessions left behind, serving their last tunnels
	defer moving.Wait()
	var b backoff.Backoff
	var last netip.AddrPort
	for {
		start := time.Now()
		at, moved, err := a.session(ctx, last, &moving)
		if at.IsValid() {
			last = at
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrRefused) {
			a.log.Error("relay refused agent; not retrying", "err", err)
			return err
		}
		if moved {
			a.log.Info("relay asked this agent to move; connecting to another", "relay", at.String(), "reason", err)
			b.Reset()
			continue
		}
		b.Done(start)
		wait := b.Next()
		a.log.Warn("session ended; reconnecting", "err", err, "in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// session connects one TLS + smux session, avoid tried last, and serves
// it. It returns when the session ends, with why; or, moved, as soon as
// the relay asks the agent to move, with the relay's reason: the session
// then goes on in the background (bg) serving the tunnels it carries
// until the relay closes it, while Run connects the next one.
func (a *Agent) session(ctx context.Context, avoid netip.AddrPort, bg *sync.WaitGroup) (at netip.AddrPort, moved bool, err error) {
	conn, at, err := a.dialRelay(ctx, avoid, []byte{mux.PreambleSession})
	if err != nil {
		return at, false, err
	}
	sess, err := smux.Client(conn, mux.Config())
	if err != nil {
		conn.Close()
		return at, false, err
	}
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	ctrl, err := sess.OpenStream()
	if err != nil {
		stop()
		sess.Close()
		return at, false, fmt.Errorf("open control stream: %w", err)
	}
	ack, err := a.hello(ctrl)
	if err != nil {
		stop()
		sess.Close()
		return at, false, err
	}
	a.log.Info("connected", "relay", at.String(), "node", ack.Relay, "allowlist_version", a.allow.Version())
	node := ack.Relay
	a.relay.Store(&node)

	goaway := make(chan string, 1)
	var once sync.Once
	ended := make(chan error, 1)
	bg.Add(1)
	go func() {
		defer bg.Done()
		defer stop()
		ended <- a.serve(ctx, &link{sess: sess, at: at}, ctrl, ack, func(reason string) {
			once.Do(func() { goaway <- reason })
		})
	}()
	select {
	case err := <-ended:
		return at, false, err
	case reason := <-goaway:
		return at, true, errors.New(reason)
	}
}

// serve runs an established session until it ends: heartbeats, the rate
// watch, the relay's control messages, and a goroutine per tunnel the
// relay opens. Its tunnels are cut when it ends; those of another
// session (the agent moving between relays) are not.
func (a *Agent) serve(ctx context.Context, l *link, ctrl *smux.Stream, ack mux.HelloAck, goaway func(string)) error {
	sess := l.sess
	defer sess.Close()
	a.sessions.Add(1)
	defer a.sessions.Add(-1)

	c := &controlConn{s: ctrl}
	c.runs.done = sess.CloseChan()
	defer c.runs.wg.Wait() // LAN runs end with the session (lanrun.go)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		a.heartbeat(c, time.Duration(ack.HeartbeatSeconds)*time.Second, sess.CloseChan())
	}()
	go func() {
		defer wg.Done()
		a.watchRates(sess)
	}()
	go func() {
		defer wg.Done()
		defer sess.Close()              // a dead control stream ends the session
		err := a.readControl(c, goaway) // returns only when the stream ends
		if ctx.Err() != nil {
			return // shutting down: the stream ends with the session
		}
		a.log.Warn("control stream", "relay", l.at.String(), "err", err)
	}()
	defer wg.Wait()
	// Runs before the wait: a tunnel on a dedicated connection does not
	// end with the session on its own, and would hold this return, hence
	// the reconnect, for as long as the relay kept it open.
	defer a.cutTunnels(sess)

	for {
		st, err := sess.AcceptStream()
		if err != nil {
			return fmt.Errorf("session: %w", err)
		}
		wg.Add(1)
		go a.serveTunnel(st, l, wg.Done)
	}
}
