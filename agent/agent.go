package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xtaci/smux"

	"github.com/nanodems/connector/agent/bpfcount"
	"github.com/nanodems/connector/agent/stats"
	"github.com/nanodems/connector/internal/relaydial"
	"github.com/nanodems/connector/internal/version"
	"github.com/nanodems/connector/mux"
)

// Config tunes a running agent. Zero values take the defaults.
type Config struct {
	Dir string // state directory written by Enroll
	// RelayAddrs override the agent listener addresses from enrollment:
	// host:port each, a name that may resolve to several addresses, or
	// several relays of one installation. They are raced (internal/relaydial).
	RelayAddrs  []string
	DialTimeout time.Duration // LAN dial timeout, default 5 s
	// DedicatedRate is the byte rate (both directions, bytes/s) above which
	// a tunnel moves off the shared session onto its own connection.
	// Default 8 MiB/s: a 4 Mbit/s camera stream (0.5 MB/s) stays shared,
	// a bulk download moves and stops adding latency to the others. <0
	// disables moving by rate.
	DedicatedRate int64
	// AllowLoopback lets the agent dial loopback, link-local (cloud
	// metadata included), unspecified, multicast and broadcast addresses
	// and its own host's addresses, which it refuses by default
	// (agent/target.go). The demo and tests, whose targets are on
	// 127.0.0.1, set it.
	AllowLoopback bool
	Logger        *slog.Logger
	// HandshakeTimeout bounds connecting to the relay's agent listener:
	// the TCP connect and the TLS handshake together. Default 15 s. A
	// relay (or anything in between) that accepts and never answers
	// would otherwise hold the agent offline with no error to log.
	HandshakeTimeout time.Duration
	// Dialer races the relay addresses; nil takes the default resolver
	// and stagger. Tests give it a resolver of their own.
	Dialer *relaydial.Dialer
	// OnLAN runs fn where the agent reaches its LAN: the sockets (and the
	// interface list) of discovery, probes and tunnel dials are made
	// inside it. Nil runs fn as is; a test runs it in a network namespace.
	OnLAN func(fn func() error) error
	// MetricsAddr, when set, serves the agent's Prometheus series at
	// http://MetricsAddr/metrics while Run runs (docs/metrics.md). Off by
	// default; meant for a loopback address.
	MetricsAddr string
	// Counting is where the agent counts its tunnels' bytes:
	// CountingAuto ("" too) in the kernel when it may load BPF programs
	// (agent/bpfcount), else in userspace; CountingUserspace always in
	// userspace; CountingOff nowhere: the heartbeat's bytes stay 0 and
	// the rate watch, which reads them, moves no tunnel to a dedicated
	// connection. Off is the baseline perf/ measures counting against.
	Counting string
}

// The values of Config.Counting.
const (
	CountingAuto      = "auto"
	CountingUserspace = "userspace"
	CountingOff       = "off"
)

// Agent is an enrolled agent. Run keeps it connected.
type Agent struct {
	cfg   Config
	id    *Identity
	allow *Allowlist
	log   *slog.Logger
	// count counts the LAN sockets' bytes in the kernel, or says they
	// are counted in the copy loop; set while Run runs.
	count atomic.Pointer[bpfcount.Counter]

	bytesIn  atomic.Uint64 // target → relay
	bytesOut atomic.Uint64 // relay → target
	active   atomic.Int64
	tunnels  atomic.Uint64
	udpDrops atomic.Uint64 // datagrams the UDP relays' full buffers lost
	stats    *stats.Set    // per device port, kept in stats.json
	opens    openCounts    // by result, and UDP relays (metrics.go)
	// metricsAddr is the metrics listener's address while Run serves it.
	metricsAddr atomic.Pointer[string]

	sessions atomic.Int32           // sessions up: two while one moves to another relay
	relay    atomic.Pointer[string] // the node of the newest session
	live     sync.Map               // *liveTunnel → struct{}
	own      ownAddrs               // the host's interface addresses, for checkAddr
}

// ErrRefused is wrapped when the relay refuses this agent for good
// (revoked, unknown). Run returns it instead of retrying.
var ErrRefused = errors.New("relay refused this agent")

// New loads the enrolled identity and the kept allowlist from cfg.Dir.
func New(cfg Config) (*Agent, error) {
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.DedicatedRate == 0 {
		cfg.DedicatedRate = 8 << 20
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 15 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch cfg.Counting {
	case "":
		cfg.Counting = CountingAuto
	case CountingAuto, CountingUserspace, CountingOff:
	default:
		return nil, fmt.Errorf("counting %q: want %s, %s or %s", cfg.Counting, CountingAuto, CountingUserspace, CountingOff)
	}
	id, err := LoadIdentity(cfg.Dir)
	if err != nil {
		return nil, err
	}
	if len(cfg.RelayAddrs) > 0 {
		id.RelayAddr, id.RelayAddrs = cfg.RelayAddrs[0], cfg.RelayAddrs
	}
	allow, err := LoadAllowlist(filepath.Join(cfg.Dir, allowlistFile))
	if err != nil {
		return nil, err
	}
	st, err := stats.Open(filepath.Join(cfg.Dir, stats.FileName), nil)
	if err != nil {
		return nil, err
	}
	return &Agent{cfg: cfg, id: id, allow: allow, stats: st, log: cfg.Logger.With("agent", id.AgentID)}, nil
}

// ID is the agent's id (its certificate CN).
func (a *Agent) ID() string { return a.id.AgentID }

// Allowlist is the list the agent enforces.
func (a *Agent) Allowlist() *Allowlist { return a.allow }

// Relay is the relay node the agent's newest session is connected to
// (its hello answer's name), "" before the first.
func (a *Agent) Relay() string {
	if p := a.relay.Load(); p != nil {
		return *p
	}
	return ""
}

// Connected reports whether a session is up.
func (a *Agent) Connected() bool { return a.sessions.Load() > 0 }

// hello sends the agent's hello and waits for the relay's answer.
func (a *Agent) hello(ctrl *smux.Stream) (mux.HelloAck, error) {
	ctrl.SetDeadline(time.Now().Add(15 * time.Second))
	defer ctrl.SetDeadline(time.Time{})
	err := mux.WriteMessage(ctrl, mux.MsgHello, mux.Hello{AgentID: a.id.AgentID, Version: version.Get().String(), AllowlistVersion: a.allow.Version(), Features: []string{mux.FeatureLANRuns}})
	if err != nil {
		return mux.HelloAck{}, fmt.Errorf("send hello: %w", err)
	}
	t, body, err := mux.ReadMessage(ctrl)
	if err != nil {
		return mux.HelloAck{}, fmt.Errorf("read hello answer: %w", err)
	}
	var ack mux.HelloAck
	if t != mux.MsgHelloAck {
		return ack, fmt.Errorf("relay answered hello with message type %d", t)
	}
	if err := mux.Decode(body, &ack); err != nil {
		return ack, err
	}
	if !ack.OK {
		if ack.Permanent {
			return ack, fmt.Errorf("%w: %s", ErrRefused, ack.Reason)
		}
		return ack, fmt.Errorf("relay refused hello: %s", ack.Reason)
	}
	if ack.HeartbeatSeconds <= 0 {
		ack.HeartbeatSeconds = 5
	}
	return ack, nil
}

// controlConn serialises writes to the control stream: heartbeats and
// allowlist acks come from different goroutines.
type controlConn struct {
	mu   sync.Mutex
	s    *smux.Stream
	runs lanRuns
}

func (c *controlConn) send(t mux.MsgType, v any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return mux.WriteMessage(c.s, t, v)
}

func (a *Agent) heartbeat(c *controlConn, every time.Duration, done <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	var changes stats.Changes // per session: a new relay learns every port
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		h := a.Counters()
		ps := changes.Next(a.stats.Snapshot(a.liveBytes))
		ps.Counting = a.Counting()
		h.Stats = &ps
		if err := c.send(mux.MsgHeartbeat, h); err != nil {
			return
		}
	}
}

// liveBytes yields the bytes of the open tunnels, which their port's
// counter gets when they end.
func (a *Agent) liveBytes(yield func(p *stats.Port, in, out uint64)) {
	count := a.count.Load()
	a.live.Range(func(k, _ any) bool {
		t := k.(*liveTunnel)
		if t.port != nil {
			in, out := t.Bytes(count)
			yield(t.port, in, out)
		}
		return true
	})
}

// Stats are the agent's counters per device port, open tunnels included.
func (a *Agent) Stats() mux.AgentStats {
	s := a.stats.Snapshot(a.liveBytes)
	s.Counting = a.Counting()
	return s
}

// keepStats writes the counters to stats.json every stats.FlushEvery
// and once more when ctx ends.
func (a *Agent) keepStats(ctx context.Context) {
	t := time.NewTicker(stats.FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := a.stats.Save(a.liveBytes); err != nil {
				a.log.Warn("saving stats", "err", err)
			}
			return
		case <-t.C:
			if err := a.stats.Save(a.liveBytes); err != nil {
				a.log.Warn("saving stats", "err", err)
			}
		}
	}
}

// Counters is what the heartbeat carries: the bytes of ended tunnels plus
// those of the open ones, and where they are counted.
func (a *Agent) Counters() mux.Heartbeat {
	count := a.count.Load()
	h := mux.Heartbeat{
		BytesIn:       a.bytesIn.Load(),
		BytesOut:      a.bytesOut.Load(),
		ActiveStreams: a.active.Load(),
		TunnelsTotal:  a.tunnels.Load(),
		Counting:      a.Counting(),
		UDPDrops:      a.udpDrops.Load(),
	}
	a.live.Range(func(k, _ any) bool {
		in, out := k.(*liveTunnel).Bytes(count)
		h.BytesIn += in
		h.BytesOut += out
		return true
	})
	return h
}

// Counting is where the agent counts its tunnels' bytes now:
// bpfcount.ModeEBPF, bpfcount.ModeUserspace, or CountingOff.
func (a *Agent) Counting() string {
	if a.cfg.Counting == CountingOff {
		return CountingOff
	}
	return a.count.Load().Mode()
}

// readControl handles the relay's control messages until the stream
// ends; goaway is called when the relay asks the agent to move.
func (a *Agent) readControl(c *controlConn, goaway func(reason string)) error {
	for {
		t, body, err := mux.ReadMessage(c.s)
		if err != nil {
			return err
		}
		switch t {
		case mux.MsgAllowlist:
			var al mux.Allowlist
			if err := mux.Decode(body, &al); err != nil {
				return err
			}
			ack := mux.AllowlistAck{Version: al.Version, Accepted: true}
			if err := a.allow.Apply(al); err != nil {
				ack.Accepted, ack.Reason = false, err.Error()
				a.log.Warn("allowlist push refused", "err", err)
			} else {
				a.log.Info("allowlist applied", "version", al.Version, "targets", len(al.Targets))
				a.cutDisallowed()
			}
			ack.Held = a.allow.Version()
			if err := c.send(mux.MsgAllowlistAck, ack); err != nil {
				return err
			}
		case mux.MsgGoAway:
			var g mux.GoAway
			if err := mux.Decode(body, &g); err != nil {
				return err
			}
			goaway(g.Reason)
		case mux.MsgDiscover, mux.MsgProbe:
			a.startRun(c, t, body) // lanrun.go
		default:
			a.log.Warn("ignoring control message", "type", t)
		}
	}
}
