package rtsp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Backend is what the gateway needs from the relay. The gateway knows
// nothing of tenants, stores or tunnels beyond it: package relay
// implements it (relay/rtsp.go) and tests implement it with a map.
type Backend interface {
	// Authorize checks a grant (the nd_grant query parameter) for handle
	// h. Errors should be *Error with the RTSP status to answer: 401 for a
	// missing, forged or expired grant, 403 for another tenant's handle,
	// 404 for an unknown one.
	Authorize(ctx context.Context, h, grant string) (Principal, error)
	// Dial opens a byte stream to the device port behind h, and says
	// which LAN address it reached (the camera's own URLs name it).
	// Errors as for Authorize: 503 agent offline, 502 unreachable, 504 …
	Dial(ctx context.Context, p Principal, h string) (net.Conn, Target, error)
	// Credentials returns the device's stored login, with which the
	// gateway answers the camera's Basic or Digest challenge itself.
	Credentials(ctx context.Context, h string) (user, pass string, ok bool)
}

// UDPBackend is a Backend that can also relay UDP on the camera's LAN,
// for cameras that stream RTP only over UDP (they answer 461 Unsupported
// Transport to interleaved TCP). It is a separate interface so backends
// without it (perf/rtspbench's) keep working: with them such a camera's
// 461 reaches the client.
type UDPBackend interface {
	// DialUDP opens a UDP relay next to the device behind h (the agent's,
	// on the camera's LAN). Errors as for Dial.
	DialUDP(ctx context.Context, p Principal, h string) (UDPRelay, error)
}

// UDPRelay is an RTP/RTCP port pair next to the camera whose datagrams
// reach the gateway. One relay carries one track.
type UDPRelay interface {
	// Ports are the pair's RTP and RTCP ports: the client_port the
	// camera is given in SETUP.
	Ports() (rtp, rtcp int)
	// SetCamera names the camera's own ports (its server_port), where
	// WriteDatagram sends; until then the relay sends where the camera's
	// datagrams came from.
	SetCamera(rtp, rtcp int) error
	// ReadDatagram reads the camera's next datagram into b (which holds
	// MaxFramePayload bytes) and says whether it came to the RTCP port.
	// One goroutine reads.
	ReadDatagram(b []byte) (n int, rtcp bool, err error)
	// Pending reports whether ReadDatagram can return without waiting
	// (the reader batches its writes until it is false). Only the
	// reading goroutine calls it.
	Pending() bool
	// WriteDatagram sends one datagram to the camera's RTP or RTCP port.
	WriteDatagram(rtcp bool, b []byte) error
	// Close ends the relay and unblocks ReadDatagram; it may be called
	// more than once.
	Close() error
}

// Principal is who a grant speaks for.
type Principal struct {
	// Tenant scopes sharing: viewers share one camera session only
	// within one tenant, so no tenant ever sees another's packets.
	Tenant string
	// Subject names the grant's holder in logs ("user:…", "admin").
	Subject string
	// Expires is when the grant stops opening new connections.
	Expires time.Time
	// Cred and User name the revocable credential that minted the grant
	// and its user, for a HoldingBackend; empty when there is none.
	Cred, User string
}

// HoldingBackend is a Backend whose grants can be revoked while they
// play: the gateway hands it every connection it authorizes, with a func
// that closes the connection, and calls release when the connection
// ends. Revoking the grant's credential closes what it holds.
type HoldingBackend interface {
	Hold(p Principal, end func()) (release func())
}

// Target is the LAN address a tunnel reached.
type Target struct {
	Host string
	Port int
}

// Error is a refusal with the RTSP status to answer it with.
type Error struct {
	Status int
	Reason string // one line, shown to operators (X-Nanodems-Error)
}

func (e *Error) Error() string { return e.Reason }

// Errorf returns an *Error.
func Errorf(status int, format string, args ...any) error {
	return &Error{Status: status, Reason: fmt.Sprintf(format, args...)}
}

// statusOf maps an error to the RTSP status the client sees.
func statusOf(err error) int {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e.Status
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, errCameraTimeout):
		return 504
	}
	return 502
}

var (
	errCameraTimeout = &Error{Status: 504, Reason: "camera did not answer in time"}
	errCameraGone    = &Error{Status: 502, Reason: "camera connection closed"}
)

// ListenerMode chooses how the gateway serves client connections.
type ListenerMode string

const (
	// GNet serves connections on gnet event loops (the default): no
	// goroutine per idle or playing viewer; request handling and camera
	// reads run on goroutines that exist only while they have work.
	GNet ListenerMode = "gnet"
	// Goroutines serves each connection with a reader and a writer
	// goroutine on the standard library's netpoller: the comparison
	// point of docs/perf-rtsp.md.
	Goroutines ListenerMode = "goroutines"
)

// Config configures a gateway. Zero values take the defaults.
type Config struct {
	Addr    string // listen address, default ":9554"
	Backend Backend
	Mode    ListenerMode // default GNet
	// TLSAddr and TLS, both set, add an RTSPS listener (rtsps://): the
	// same gateway behind TLS, served by the goroutine listener whatever
	// Mode says (gnet has no TLS).
	TLSAddr string
	TLS     *tls.Config
	// Loops is the number of gnet event loops; default the CPU count.
	Loops int
	// NoFanOut turns sharing off: every viewer gets its own camera
	// session (the pass-through path).
	NoFanOut bool
	// ViewerBacklog bounds the bytes queued for one viewer of a shared
	// session (default 1 MiB, ~2 s of a 4 Mbit/s stream). A viewer over it
	// skips to the next keyframe; one that stays over it for DropAfter is
	// disconnected. Either way the other viewers never wait for it.
	ViewerBacklog int
	// DropAfter: see ViewerBacklog; default 10 s.
	DropAfter time.Duration
	// Backlog bounds the bytes queued towards a pass-through client before
	// the gateway stops reading the camera (backpressure through the
	// tunnel); default 256 KiB.
	Backlog int
	// SendBuffer, if set, fixes the kernel send buffer of client sockets
	// (SO_SNDBUF). The default leaves Linux's autotuning on, which lets a
	// socket of a stalled viewer absorb up to tcp_wmem's maximum (4 MiB)
	// before the gateway's own backlog accounting sees anything; a fixed
	// buffer of a few hundred KiB still covers a 4 Mbit/s stream over a
	// 200 ms path and makes a slow viewer visible sooner.
	SendBuffer int
	// CameraTimeout bounds the wait for a camera's answer; default 15 s.
	CameraTimeout time.Duration
	// ResumeFor is how long viewers of a shared camera session are held
	// when its camera connection is lost (agent restart, tunnel loss,
	// camera reboot) while the gateway opens it again; default 20 s, an
	// agent's restart takes 0.4-2 s. Past it they get an RTCP BYE and a
	// close. Negative: no hold, a loss ends the viewers at once.
	ResumeFor time.Duration
	// IdleTimeout closes a connection that has not completed an
	// authorized request within it (slow or idle unauthenticated peers);
	// default 30 s.
	IdleTimeout time.Duration
	Limits      Limits
	Logger      *slog.Logger
}

// Gateway is a running RTSP gateway.
type Gateway struct {
	cfg Config
	log *slog.Logger

	srcMu     sync.Mutex
	sources   map[string]*source
	notShared map[string]time.Time // key → until: camera needs the client's own login
	udpOnly   map[string]time.Time // handle → until: camera answered 461 to TCP

	tunMu   sync.Mutex
	tunnels map[string]*clientConn // x-sessioncookie → logical connection of an HTTP tunnel

	connMu sync.Mutex
	conns  map[*clientConn]struct{}

	digest *digestAuth // nonces of Digest logins (DigestBackend)

	ln     listener
	tlsLn  listener // RTSPS; nil without Config.TLS
	closed atomic.Bool
	wg     sync.WaitGroup // background work: sources, teardowns

	stats Stats
}

// Stats are the gateway's counters.
type Stats struct {
	Conns          atomic.Int64 // open client connections (HTTP tunnels count once)
	Sources        atomic.Int64 // shared camera sessions open
	Viewers        atomic.Int64 // viewers playing from shared sessions
	CameraSessions atomic.Int64 // camera connections open (shared or not)
	Skips          atomic.Int64 // times a slow viewer was skipped to a keyframe
	Drops          atomic.Int64 // slow viewers disconnected
	Resumes        atomic.Int64 // lost camera sessions opened again with their viewers held
	GiveUps        atomic.Int64 // lost camera sessions whose viewers were ended after ResumeFor
	// UDPStrangers counts datagrams to a UDP client's server ports from
	// other ports than the client announced (dropped: see udpPair).
	UDPStrangers atomic.Int64
}

type listener interface {
	addr() string
	close() error
}

// New returns a gateway; Start listens.
func New(cfg Config) (*Gateway, error) {
	if cfg.Backend == nil {
		return nil, errors.New("rtsp: no backend")
	}
	if cfg.Addr == "" {
		cfg.Addr = ":9554"
	}
	if cfg.Mode == "" {
		cfg.Mode = GNet
	}
	if cfg.Mode != GNet && cfg.Mode != Goroutines {
		return nil, fmt.Errorf("rtsp: unknown listener mode %q", cfg.Mode)
	}
	if cfg.ViewerBacklog <= 0 {
		cfg.ViewerBacklog = 1 << 20
	}
	if cfg.DropAfter <= 0 {
		cfg.DropAfter = 10 * time.Second
	}
	if cfg.Backlog <= 0 {
		cfg.Backlog = 256 << 10
	}
	if cfg.CameraTimeout <= 0 {
		cfg.CameraTimeout = 15 * time.Second
	}
	if cfg.ResumeFor == 0 {
		cfg.ResumeFor = 20 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Second
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Gateway{
		cfg: cfg, log: cfg.Logger, digest: newDigestAuth(),
		sources: map[string]*source{}, notShared: map[string]time.Time{}, udpOnly: map[string]time.Time{},
		tunnels: map[string]*clientConn{}, conns: map[*clientConn]struct{}{},
	}, nil
}

// Start opens the listener.
func (g *Gateway) Start() error {
	var err error
	switch g.cfg.Mode {
	case GNet:
		g.ln, err = listenGnet(g)
	default:
		g.ln, err = listenStd(g)
	}
	if err != nil {
		return fmt.Errorf("rtsp: listen %s: %w", g.cfg.Addr, err)
	}
	if g.cfg.TLS != nil && g.cfg.TLSAddr != "" {
		if g.tlsLn, err = listenTLS(g); err != nil {
			g.ln.close()
			return fmt.Errorf("rtsp: listen (RTSPS) %s: %w", g.cfg.TLSAddr, err)
		}
	}
	return nil
}

// TLSAddr is the RTSPS listener's address ("" without one).
func (g *Gateway) TLSAddr() string {
	if g.tlsLn == nil {
		return ""
	}
	return g.tlsLn.addr()
}

// Addr is the listening address ("127.0.0.1:9554").
func (g *Gateway) Addr() string {
	if g.ln == nil {
		return ""
	}
	return g.ln.addr()
}

// Stats returns the live counters.
func (g *Gateway) Stats() *Stats { return &g.stats }

// Close stops listening, closes every connection (tearing down their
// camera sessions) and waits for the background work to end.
func (g *Gateway) Close() error {
	if !g.closed.CompareAndSwap(false, true) {
		return nil
	}
	var err error
	if g.ln != nil {
		err = g.ln.close()
	}
	if g.tlsLn != nil {
		g.tlsLn.close()
	}
	g.connMu.Lock()
	conns := make([]*clientConn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	g.connMu.Unlock()
	for _, c := range conns {
		c.closeTransport()
	}
	g.wg.Wait()
	return err
}

func (g *Gateway) track(c *clientConn, add bool) {
	g.connMu.Lock()
	if add {
		g.conns[c] = struct{}{}
	} else {
		delete(g.conns, c)
	}
	g.connMu.Unlock()
}
