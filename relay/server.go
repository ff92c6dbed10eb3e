package relay

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nanodems/connector/internal/atomicfile"
	"github.com/nanodems/connector/internal/coalesce"
	"github.com/nanodems/connector/internal/dist"
	"github.com/nanodems/connector/internal/metrics"
	"github.com/nanodems/connector/relay/pki"
	"github.com/nanodems/connector/relay/rollup"
	"github.com/nanodems/connector/relay/secret"
	"github.com/nanodems/connector/relay/store"
)

// Config configures a relay. Zero values take the defaults.
type Config struct {
	DataDir   string // SQLite database, CA, keys; created 0700
	AgentAddr string // agent listener, default ":8443"
	APIAddr   string // HTTPS API, default ":9443"
	// RTSPAddr is the RTSP gateway's listener (docs/rtsp.md),
	// default ":9554"; "off" turns the gateway off.
	RTSPAddr string
	// RTSPSAddr is the gateway's RTSPS listener (rtsps://, TLS with the
	// API's certificate), e.g. ":322"; "" or "off" runs none, and so does
	// PlainHTTP (no certificate). nanodems-relay serve defaults to ":322".
	RTSPSAddr string
	// PlainHTTP serves the API without TLS. It is refused unless APIAddr is
	// a loopback address: tokens must never cross a network in clear.
	PlainHTTP bool
	// TLSCertFile/TLSKeyFile give the API a certificate (e.g. from a public
	// CA). Without them the relay makes and keeps a self-signed one, and
	// enrollment pins it.
	TLSCertFile, TLSKeyFile string
	// PublicAgentAddr is the host:port enrolled agents dial. Default: the
	// host the enrolling agent used for the API, with the agent port.
	PublicAgentAddr string
	// Hosts are extra DNS names / IPs for the relay's certificates.
	Hosts []string
	// AppsDomain turns on the browser proxy's subdomain mode: with a
	// wildcard DNS name *.AppsDomain pointing at the relay, each handle is
	// served at {label}.AppsDomain with no rewriting (docs/browser.md).
	AppsDomain string
	// PublicURL is the relay's own origin as browsers reach it, e.g.
	// https://relay.example.com; the subdomain mode sends users there to
	// sign in.
	PublicURL string
	// MetricsAddr, when set, serves the relay's Prometheus series at
	// http://MetricsAddr/metrics (docs/metrics.md) on a listener of its
	// own. "" serves none; `nanodems-relay serve` defaults it to
	// 127.0.0.1:9100.
	MetricsAddr string
	// DebugAddr, when set, serves net/http/pprof on its own listener. It
	// must be a loopback address: profiles reveal memory contents.
	DebugAddr string
	// CameraTimeout is how long a camera may take to start answering a
	// proxied request before the operator gets a 504; default 30 s.
	CameraTimeout time.Duration
	NodeName      string        // this relay in "Relay" columns; default hostname
	EnrollTTL     time.Duration // enrollment token lifetime, default 24 h
	Now           func() time.Time
	Logger        *slog.Logger
	Store         store.Store // default: SQLite at DataDir/relay.db

	// MaxConnsPerAddr bounds the API connections one client address (an
	// IPv6 /64) holds open at once; beyond it a new connection is closed
	// before its handshake. Default: a quarter of the open-file limit
	// (RLIMIT_NOFILE, raised to its hard limit at Start), so that one
	// address cannot take the descriptors every agent and operator needs.
	// <0 turns the bound off. Harnesses that open thousands of tunnels
	// from 127.0.0.1 raise it.
	MaxConnsPerAddr int

	// PeerAddr is the inter-relay listener (BridgeTunnel, docs/ha.md),
	// e.g. ":7443"; "" runs no peer listener: a relay alone, that
	// neither bridges to nor is bridged from others.
	PeerAddr string
	// PeerEndpoint is the host:port the other relays dial to reach this
	// one's peer listener, written in its presence leases. Default: the
	// listener's address, or NodeName with its port when the listener's
	// host is unspecified.
	PeerEndpoint string
	// InternalCADir holds the internal CA (internal-ca.pem,
	// internal-ca-key.pem) that signs the relays' peer leaves. Every relay
	// of a fleet must load the same one; default DataDir.
	InternalCADir string

	// DownloadsDir holds the binaries the relay offers at /downloads/
	// (nanodems-dist fills it; relay/downloads.go). Empty: none.
	DownloadsDir string

	// JobTick, for tests, replaces the tick of every locked job (the
	// lease reaper, the stats rollups, relay/jobs.go) and makes each TTL
	// three ticks, as in production: the production ticks are one minute
	// and more, which no end-to-end test can wait out. 0: the jobs' own.
	JobTick time.Duration
}

// Server is a running relay. It holds the agent listener, the registry
// of agent sessions, Dial and its route cache, the configuration and the
// lifecycle (New, Start, Close); the operator edge is a set of parts, each
// depending on Dial (the Dialer), the store and the authenticator, wired
// together in one place (edge.go) and routed in one table (api.go).
type Server struct {
	base   // the configuration, the store, the log
	ca     *pki.CA
	apiPin string // "sha256:…" of the API certificate, "" with PlainHTTP

	agentTLS *tls.Config
	apiTLS   *tls.Config

	// Secrets loaded by New and handed to the parts that use them.
	adminKeyHash []byte
	grantKey     []byte  // signs subdomain sign-in grants (and, derived, RTSP grants)
	sealer       *sealer // device logins, sealed at rest
	adminKeyFile string  // set on the first start only

	agents *registry
	// metrics are the counters of /metrics (metrics.go), served by
	// metricsSrv when Config.MetricsAddr is set.
	metrics    *relayMetrics
	metricsSrv *metrics.Server
	runs       *lanRuns // discoveries and probes (lanruns.go)
	bridge     *bridge  // BridgeTunnel; nil without a peer listener
	// crashed makes Close behave as a crash for presence and locks: no
	// lease deleted, no lock released (tests of expiry).
	crashed atomic.Bool
	routes  sync.Map // handle → store.Route, invalidated on change
	live    sync.Map // *tunnelConn → struct{}: open tunnels

	// leasesSeen is the last lease read for each agent another relay
	// holds, for opens while the database is away (presence.go).
	leasesSeen sync.Map // agent id → store.Lease

	// The operator edge (edge.go).
	auth    *authenticator
	mgmt    *managementAPI
	enroll  *enroller
	signin  *signIn
	browser *browserProxy
	tunnels *wsTunnels
	cli     *cliEdge
	partner *partnerSessions
	rtspGW  *rtspGateway
	dl      *downloadsPart
	claim   *claimer
	install *installers
	scans   *lanScans

	// Traffic history (relay/stats.go, relay/rollup).
	statsRec  *rollup.Recorder
	statsJobs *rollup.Jobs

	agentLn, apiLn, debugLn, peerLn net.Listener
	http                            *http.Server
	gate                            *handshakeGate // the API listener's TLS handshakes (relay/overload.go)
	wg                              sync.WaitGroup
	closeOnce                       sync.Once
	done                            chan struct{}

	// Lifecycle as /healthz/ready reports it (relay/health.go, drain.go).
	listening atomic.Bool   // both listeners up: from Start to Drain or Close
	draining  atomic.Bool   // Drain has begun
	drainCh   chan struct{} // closed when Drain begins
	drainOnce sync.Once
}

// New opens (or initialises) the relay's state in cfg.DataDir. It does not
// listen yet; see Start.
func New(cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("relay: no data directory")
	}
	if cfg.AgentAddr == "" {
		cfg.AgentAddr = ":8443"
	}
	if cfg.APIAddr == "" {
		cfg.APIAddr = ":9443"
	}
	if cfg.RTSPAddr == "" {
		cfg.RTSPAddr = ":9554"
	}
	if cfg.CameraTimeout == 0 {
		cfg.CameraTimeout = 30 * time.Second
	}
	if cfg.EnrollTTL == 0 {
		cfg.EnrollTTL = 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.NodeName == "" {
		cfg.NodeName, _ = os.Hostname()
	}
	if cfg.DebugAddr != "" && !isLoopbackAddr(cfg.DebugAddr) {
		return nil, fmt.Errorf("relay: the debug listener must be on a loopback address, not %q", cfg.DebugAddr)
	}
	if cfg.PlainHTTP && !isLoopbackAddr(cfg.APIAddr) {
		return nil, fmt.Errorf("relay: plain HTTP is only allowed on a loopback address, not %q", cfg.APIAddr)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("relay: data directory: %w", err)
	}
	s := &Server{base: base{cfg: &cfg, log: cfg.Logger}, agents: newRegistry(), runs: newLANRuns(), done: make(chan struct{}), drainCh: make(chan struct{})}
	var err error
	if s.store = cfg.Store; s.store == nil {
		if s.store, err = store.OpenSQLite(filepath.Join(cfg.DataDir, "relay.db")); err != nil {
			return nil, err
		}
	}
	if err := s.initSecrets(); err != nil {
		s.store.Close()
		return nil, err
	}
	s.metrics = newRelayMetrics(s)
	var catalog *dist.Catalog
	if cfg.DownloadsDir != "" {
		if catalog, err = dist.OpenCatalog(cfg.DownloadsDir); err != nil {
			s.store.Close()
			return nil, fmt.Errorf("relay: %w", err)
		}
	}
	s.wireEdge(catalog)
	s.statsRec = rollup.NewRecorder(s.store, s.log)
	s.statsJobs = &rollup.Jobs{Store: s.store, Now: s.cfg.Now, Log: s.log}
	return s, nil
}

// initSecrets loads or creates the Agent CA, the listener certificates and
// the admin key.
func (s *Server) initSecrets() error {
	var err error
	s.ca, err = pki.LoadOrCreateCA(s.cfg.DataDir, "agent-ca", "nanodems agent CA")
	if err != nil {
		return err
	}
	hosts := append([]string{"localhost", "127.0.0.1", "::1", s.cfg.NodeName}, s.cfg.Hosts...)
	agentCert, err := s.ca.ServerCert(hosts)
	if err != nil {
		return err
	}
	s.agentTLS = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{agentCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    s.ca.Pool(),
	}
	if !s.cfg.PlainHTTP {
		var apiCert tls.Certificate
		if s.cfg.TLSCertFile != "" {
			apiCert, err = tls.LoadX509KeyPair(s.cfg.TLSCertFile, s.cfg.TLSKeyFile)
		} else {
			apiCert, err = pki.LoadOrCreateSelfSigned(filepath.Join(s.cfg.DataDir, "api.pem"), filepath.Join(s.cfg.DataDir, "api-key.pem"), hosts)
		}
		if err != nil {
			return fmt.Errorf("relay: API certificate: %w", err)
		}
		if s.cfg.TLSCertFile == "" {
			s.apiPin = pki.Pin(apiCert.Leaf)
		}
		// NextProtos as ServeTLS would set them: http.Server serves HTTP/2
		// over its own listener only when its TLSConfig offers "h2".
		s.apiTLS = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{apiCert}, NextProtos: []string{"h2", "http/1.1"}}
	}
	if err := s.initGrantKey(); err != nil {
		return err
	}
	if s.sealer, err = newSealer(s.cfg.DataDir, s.store); err != nil {
		return err
	}
	if s.cfg.PeerAddr != "" {
		dir := s.cfg.InternalCADir
		if dir == "" {
			dir = s.cfg.DataDir
		}
		ica, err := pki.LoadOrCreateCA(dir, pki.InternalCAName, "nanodems internal CA")
		if err != nil {
			return fmt.Errorf("relay: internal CA: %w", err)
		}
		peerHosts := hosts
		if h, _, err := net.SplitHostPort(s.cfg.PeerEndpoint); err == nil {
			peerHosts = append(peerHosts, h)
		}
		if s.bridge, err = newBridge(s, ica, peerHosts); err != nil {
			return err
		}
	}
	return s.initAdminKey()
}

// initGrantKey loads the key that signs subdomain sign-in grants, kept in
// the store so every relay of an installation accepts every grant.
func (s *Server) initGrantKey() error {
	ctx := context.Background()
	v, err := s.store.GetSetting(ctx, "web_grant_key")
	if errors.Is(err, store.ErrNotFound) {
		k := make([]byte, 32)
		rand.Read(k)
		v = hex.EncodeToString(k)
		err = s.store.SetSetting(ctx, "web_grant_key", v)
	}
	if err != nil {
		return err
	}
	s.grantKey, err = hex.DecodeString(v)
	return err
}

// initAdminKey writes the initial admin key, once, to a 0600 file; only its
// hash is kept in the store.
func (s *Server) initAdminKey() error {
	ctx := context.Background()
	h, err := s.store.GetSetting(ctx, "admin_key_sha256")
	if err == nil {
		s.adminKeyHash, err = hex.DecodeString(h)
		return err
	}
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	plain, hash := secret.New(secret.AdminKey)
	path := filepath.Join(s.cfg.DataDir, "admin-key")
	if err := atomicfile.Write(path, []byte(plain+"\n"), 0o600); err != nil {
		return fmt.Errorf("relay: write admin key: %w", err)
	}
	if err := s.store.SetSetting(ctx, "admin_key_sha256", hex.EncodeToString(hash)); err != nil {
		return err
	}
	s.adminKeyHash, s.adminKeyFile = hash, path
	s.log.Info("initial admin key written", "path", path)
	return nil
}

// AdminKeyFile is the path the initial admin key was written to by this
// start, or "" when it already existed.
func (s *Server) AdminKeyFile() string { return s.adminKeyFile }

// APIPin is the API certificate's public-key pin for agents and CLIs, or ""
// when the API has a certificate from the operator or runs plain HTTP.
func (s *Server) APIPin() string { return s.apiPin }

// API connection timeouts. Both apply to HTTP only: a WebSocket tunnel
// is hijacked and has no timeout, and no ReadTimeout is set, since it
// would cut long uploads and streams through the browser proxy.
const (
	// apiHeaderTimeout bounds the TLS handshake and a request's header.
	apiHeaderTimeout = 10 * time.Second
	// minConnsPerAddr is the floor of the default per-address bound.
	minConnsPerAddr = 16
)

// apiIdleTimeout closes a keep-alive connection that carries no request
// for this long. Browsers keep idle connections for 115 s (Firefox) to
// 300 s (Chrome); reopening one costs a handshake, while an idle
// connection held forever costs a descriptor. A variable for tests.
var apiIdleTimeout = 2 * time.Minute

// Start opens both listeners and serves until Close.
func (s *Server) Start() error {
	nofile, err := raiseFileLimit()
	if err != nil {
		s.log.Warn("open-file limit", "err", err)
	}
	maxPerAddr := s.cfg.MaxConnsPerAddr
	if maxPerAddr == 0 {
		maxPerAddr = max(int(nofile/4), minConnsPerAddr)
		if nofile == 0 {
			maxPerAddr = 1024
		}
	}
	s.log.Info("connection limits", "nofile", nofile, "api_max_conns_per_address", maxPerAddr)
	if s.agentLn, err = net.Listen("tcp", s.cfg.AgentAddr); err != nil {
		return fmt.Errorf("relay: agent listener: %w", err)
	}
	if s.apiLn, err = net.Listen("tcp", s.cfg.APIAddr); err != nil {
		s.agentLn.Close()
		return fmt.Errorf("relay: API listener: %w", err)
	}
	if err := s.rtspGW.start(); err != nil { // RTSP gateway (relay/rtsp.go)
		s.agentLn.Close()
		s.apiLn.Close()
		return err
	}
	s.http = &http.Server{
		Handler:           s.handler(),
		TLSConfig:         s.apiTLS,
		ReadHeaderTimeout: apiHeaderTimeout,
		IdleTimeout:       apiIdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	// One client address holds at most maxPerAddr connections, counted
	// before any TLS work (relay/conncap.go).
	var ln net.Listener = s.apiLn
	if maxPerAddr > 0 {
		ln = newCapListener(ln, maxPerAddr, s.log)
	}
	if s.apiTLS != nil {
		// Handshakes bounded and done before http.Server sees the
		// connection (relay/overload.go).
		s.gate = newHandshakeGate(tls.NewListener(coalesce.Listener(ln), s.apiTLS), s.log)
	}
	if s.bridge != nil {
		if s.peerLn, err = net.Listen("tcp", s.cfg.PeerAddr); err != nil {
			s.agentLn.Close()
			s.apiLn.Close()
			s.rtspGW.stop()
			return fmt.Errorf("relay: peer listener: %w", err)
		}
		s.bridge.start(s.peerLn)
	}
	s.runLocked("presence-reaper", leaseReapEvery, 3*leaseReapEvery, s.reapLeases)
	s.runStatsJobs() // relay/stats.go
	s.wg.Add(3)
	go func() {
		defer s.wg.Done()
		s.serveAgents(s.agentLn)
	}()
	go func() {
		defer s.wg.Done()
		// Other relays' changes on a shared database (relay/changes.go);
		// the subscription ends with ctx when the relay closes.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s.followChanges(ctx)
	}()
	go func() {
		defer s.wg.Done()
		// http.Server.Serve waits out failed accepts itself (5 ms doubling
		// to 1 s), as internal/acceptloop does for the other listeners.
		var err error
		if s.apiTLS != nil {
			// As ServeTLS does, over connections whose writes can be
			// coalesced once a WebSocket owns them (relay/hijack.go).
			err = s.http.Serve(s.gate)
		} else {
			err = s.http.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("API listener", "err", err)
		}
	}()
	if s.cfg.MetricsAddr != "" {
		if s.metricsSrv, err = metrics.Listen(s.cfg.MetricsAddr, s.metrics.reg, s.log); err != nil {
			return fmt.Errorf("relay: %w", err)
		}
	}
	if s.cfg.DebugAddr != "" {
		if s.debugLn, err = net.Listen("tcp", s.cfg.DebugAddr); err != nil {
			return fmt.Errorf("relay: debug listener: %w", err)
		}
		dm := http.NewServeMux()
		dm.HandleFunc("/debug/pprof/", pprof.Index)
		dm.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		dm.HandleFunc("/debug/pprof/profile", pprof.Profile)
		dm.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		dm.HandleFunc("/debug/pprof/trace", pprof.Trace)
		// BridgeTunnel's counters as JSON; the same counters are
		// connector_interrelay_* on the metrics listener.
		dm.HandleFunc("/debug/bridge", func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, s.BridgeStats())
		})
		go http.Serve(s.debugLn, dm)
		s.log.Info("pprof listening", "addr", "http://"+s.debugLn.Addr().String()+"/debug/pprof/")
	}
	s.listening.Store(true)
	s.log.Info("relay listening", "api", s.APIURL(), "agents", s.agentLn.Addr().String(), "peers", s.peerEndpoint(), "node", s.cfg.NodeName)
	return nil
}

// publicURL is the relay's origin for browsers: Config.PublicURL, else
// the API listener's URL.
func (s *Server) publicURL() string {
	if s.cfg.PublicURL != "" {
		return s.cfg.PublicURL
	}
	return s.APIURL()
}

// APIURL is the base URL of the API listener.
func (s *Server) APIURL() string {
	scheme := "https"
	if s.apiTLS == nil {
		scheme = "http"
	}
	return scheme + "://" + dialable(s.apiLn.Addr())
}

// AgentAddr is the agent listener's address.
func (s *Server) AgentAddr() string { return dialable(s.agentLn.Addr()) }

// publicAgentAddr is where enrolled agents dial: the configured address,
// else the host the agent reached the API at, with the agent port.
func (s *Server) publicAgentAddr(r *http.Request) string {
	if s.cfg.PublicAgentAddr != "" {
		return s.cfg.PublicAgentAddr
	}
	_, port, _ := net.SplitHostPort(s.agentLn.Addr().String())
	host := r.Host
	if h, _, err := net.SplitHostPort(r.Host); err == nil {
		host = h
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), port)
}

// Store is the relay's store (tests, demo).
func (s *Server) Store() store.Store { return s.store }

// Close stops listening, ends every agent session and closes the store.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.listening.Store(false)
		close(s.done)
		if s.agentLn != nil {
			s.agentLn.Close()
		}
		if s.debugLn != nil {
			s.debugLn.Close()
		}
		if s.metricsSrv != nil {
			s.metricsSrv.Close()
		}
		if s.http != nil {
			// Hijacked WebSocket tunnels are not tracked by net/http; they
			// end when their agent session below closes.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			s.http.Shutdown(ctx)
			cancel()
			s.http.Close()
		}
		s.rtspGW.stop() // RTSP gateway: tears its sessions down while agents are connected
		if s.bridge != nil {
			s.bridge.close() // the peer listener and the bridges both ways
		}
		s.agents.closeAll()
		s.browser.web.tr.CloseIdleConnections()
		s.wg.Wait()
		s.dl.close()
		err = s.store.Close()
	})
	return err
}

// dialable turns a listener address into one a client can dial: the
// unspecified address becomes loopback.
func dialable(a net.Addr) string {
	host, port, _ := net.SplitHostPort(a.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// peerEndpoint is where the other relays reach this one's peer listener
// (its leases' endpoint); "" without one.
func (s *Server) peerEndpoint() string {
	if s.cfg.PeerEndpoint != "" {
		return s.cfg.PeerEndpoint
	}
	if s.peerLn == nil {
		return ""
	}
	host, port, _ := net.SplitHostPort(s.peerLn.Addr().String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = s.cfg.NodeName
	}
	return net.JoinHostPort(host, port)
}

// PeerAddr is the peer listener's address, or "" without one.
func (s *Server) PeerAddr() string {
	if s.peerLn == nil {
		return ""
	}
	return dialable(s.peerLn.Addr())
}

// BridgeStats are the counters of BridgeTunnel on this relay (zero
// without a peer listener).
func (s *Server) BridgeStats() BridgeStats {
	if s.bridge == nil {
		return BridgeStats{}
	}
	return s.bridge.stats()
}

// DebugAddr is the pprof listener's address, or "" without one.
func (s *Server) DebugAddr() string {
	if s.debugLn == nil {
		return ""
	}
	return s.debugLn.Addr().String()
}
