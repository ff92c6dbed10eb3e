package relay

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nanodems/connector/internal/metrics"
	"github.com/nanodems/connector/relay/store"
)

// relayMetrics is what the relay counts for Prometheus (docs/metrics.md).
// The data path only adds to atomics (pathMeter, webStatus, cliLive); the
// collector turns them, the registry's agent count, the RTSP gateway's
// and the bridge's counters into series when it is scraped. Each Server
// has its own registry: a test process runs several relays.
type relayMetrics struct {
	reg   *prometheus.Registry
	paths [numPaths]pathMeter
	// webStatus counts the browser proxy's answers by status class,
	// index status/100 (1 to 5).
	webStatus [6]atomic.Uint64
	cliLive   atomic.Int64 // CLI mux connections up
	storeLat  *prometheus.HistogramVec
}

// path is the meter of access path p.
func (m *relayMetrics) path(p AccessPath) *pathMeter {
	if p >= numPaths {
		p = PathWS
	}
	return &m.paths[p]
}

// webAnswered counts one answer of the browser proxy.
func (m *relayMetrics) webAnswered(status int) {
	if c := status / 100; c >= 1 && c <= 5 {
		m.webStatus[c].Add(1)
	}
}

// storeLatencyBuckets span an SQLite read from the page cache (tens of
// microseconds) to a PostgreSQL write across a loaded network (seconds).
var storeLatencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

// newRelayMetrics makes the relay's registry: the Go runtime and process
// collectors, the store latency histogram (fed by the store when it can
// observe itself) and the relay's collector.
func newRelayMetrics(s *Server) *relayMetrics {
	m := &relayMetrics{reg: metrics.NewRegistry()}
	m.storeLat = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "connector_store_latency_seconds",
		Help:    "Duration of the relay's database calls: op=read (a query, to its first row) or write (a transaction, to its commit).",
		Buckets: storeLatencyBuckets,
	}, []string{"op"})
	m.reg.MustRegister(m.storeLat, &relayCollector{s: s, m: m})
	if o, ok := s.store.(interface{ ObserveLatency(store.LatencyObserver) }); ok {
		read, write := m.storeLat.WithLabelValues("read"), m.storeLat.WithLabelValues("write")
		o.ObserveLatency(func(op string, d time.Duration) {
			if op == "read" {
				read.Observe(d.Seconds())
			} else {
				write.Observe(d.Seconds())
			}
		})
	}
	return m
}

// Descriptions of the relay's series; docs/metrics.md explains each.
var (
	descAgentsOnline = prometheus.NewDesc("connector_agents_online",
		"Agents with a session to this relay now.", nil, nil)
	descTunnelsOpen = prometheus.NewDesc("connector_tunnels_open",
		"Tunnels open through this relay now, by access path.", []string{"path"}, nil)
	descTunnelsOpened = prometheus.NewDesc("connector_tunnels_opened_total",
		"Tunnel opens that passed the access check, by access path and result.", []string{"path", "result"}, nil)
	descTunnelsDenied = prometheus.NewDesc("connector_tunnels_denied_total",
		"Tunnel opens refused by the access check (unknown or revoked handle, another tenant's), by access path.", []string{"path"}, nil)
	descTunnelBytes = prometheus.NewDesc("connector_tunnel_bytes_total",
		"Bytes carried by tunnels, by access path and direction (to_device, from_device).", []string{"path", "direction"}, nil)
	descRTSPViewers = prometheus.NewDesc("connector_rtsp_viewers",
		"RTSP players watching from shared camera sessions now.", nil, nil)
	descRTSPShared = prometheus.NewDesc("connector_rtsp_shared_sessions",
		"Shared camera sessions (one camera stream fanned out to its viewers) open now.", nil, nil)
	descRTSPCamera = prometheus.NewDesc("connector_rtsp_camera_sessions",
		"Camera connections of the RTSP gateway open now, shared or not.", nil, nil)
	descRTSPClients = prometheus.NewDesc("connector_rtsp_clients",
		"RTSP client connections to the gateway open now.", nil, nil)
	descWebRequests = prometheus.NewDesc("connector_web_requests_total",
		"Browser proxy requests answered, by status class (1xx to 5xx).", []string{"class"}, nil)
	descCLILive = prometheus.NewDesc("connector_cli_sessions_live",
		"CLI mux connections (a running nanodems-tunnel) up now.", nil, nil)
	descDBHealth = prometheus.NewDesc("connector_db_health_seconds",
		"How long the database took to answer the scrape's ping; the ping's bound when it did not answer.", nil, nil)
	descDBUp = prometheus.NewDesc("connector_db_up",
		"1 when the database answered the scrape's ping in time, else 0.", nil, nil)
	descBridgesOpen = prometheus.NewDesc("connector_interrelay_bridges_open",
		"BridgeTunnel streams open now, both roles.", nil, nil)
	descBridgeOpens = prometheus.NewDesc("connector_interrelay_bridge_opens_total",
		"BridgeTunnel streams opened, both roles.", nil, nil)
	descBridgeBytes = prometheus.NewDesc("connector_interrelay_bridge_bytes_total",
		"Bytes carried across BridgeTunnel streams, both directions and roles.", nil, nil)
	descBridgeFailures = prometheus.NewDesc("connector_interrelay_bridge_failures_total",
		"BridgeTunnel opens that failed, both roles.", nil, nil)
)

var webClasses = [6]string{1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}

var directionNames = [2]string{"to_device", "from_device"}

// relayCollector reads the relay's counters at scrape time.
type relayCollector struct {
	s *Server
	m *relayMetrics
}

func (c *relayCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAgentsOnline, descTunnelsOpen, descTunnelsOpened, descTunnelsDenied, descTunnelBytes,
		descRTSPViewers, descRTSPShared, descRTSPCamera, descRTSPClients, descWebRequests, descCLILive, descDBHealth, descDBUp,
		descBridgesOpen, descBridgeOpens, descBridgeBytes, descBridgeFailures} {
		ch <- d
	}
}

func (c *relayCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descAgentsOnline, float64(c.s.agents.count()))
	for p := range numPaths {
		pm, name := &c.m.paths[p], pathNames[p]
		gauge(descTunnelsOpen, float64(pm.open.Load()), name)
		for r := range numResults {
			counter(descTunnelsOpened, pm.opened[r].Load(), name, resultNames[r])
		}
		counter(descTunnelsDenied, pm.denied.Load(), name)
		counter(descTunnelBytes, pm.toDevice.Load(), name, directionNames[0])
		counter(descTunnelBytes, pm.fromDevice.Load(), name, directionNames[1])
	}
	var viewers, shared, camera, clients int64
	if st := c.s.RTSPStats(); st != nil {
		viewers, shared, camera, clients = st.Viewers.Load(), st.Sources.Load(), st.CameraSessions.Load(), st.Conns.Load()
	}
	gauge(descRTSPViewers, float64(viewers))
	gauge(descRTSPShared, float64(shared))
	gauge(descRTSPCamera, float64(camera))
	gauge(descRTSPClients, float64(clients))
	for class := 1; class <= 5; class++ {
		counter(descWebRequests, c.m.webStatus[class].Load(), webClasses[class])
	}
	gauge(descCLILive, float64(c.m.cliLive.Load()))
	ctx, cancel := context.WithTimeout(context.Background(), readyPingTimeout)
	start := time.Now()
	err := pingStore(ctx, c.s.store)
	took := time.Since(start)
	cancel()
	up := 1.0
	if err != nil {
		up, took = 0, max(took, readyPingTimeout)
	}
	gauge(descDBHealth, took.Seconds())
	gauge(descDBUp, up)
	b := c.s.BridgeStats()
	gauge(descBridgesOpen, float64(b.Open))
	counter(descBridgeOpens, b.Opens)
	counter(descBridgeBytes, b.Bytes)
	counter(descBridgeFailures, b.Failures)
}

// statusRecorder notes the status a handler answers with, for the
// browser proxy's counts. Unwrap lets http.ResponseController (which the
// reverse proxy uses to flush and to hijack for a WebSocket) reach the
// connection's own writer.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 || (w.status < 200 && code >= 200) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// countWeb wraps a browser proxy handler so that its answer is counted
// by status class. A hijacked WebSocket upgrade counts as its 101.
func (m *relayMetrics) countWeb(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sr := &statusRecorder{ResponseWriter: w}
		defer func() { m.webAnswered(answeredStatus(sr.status, r)) }()
		h(sr, r)
	}
}

// answeredStatus is the status of an answer the recorder saw as s. A
// handler that wrote nothing answered 200, as net/http sends it, unless
// the request was a WebSocket upgrade: the reverse proxy hijacks the
// connection to write the camera's 101 itself, so nothing passes the
// recorder.
func answeredStatus(s int, r *http.Request) int {
	switch {
	case s != 0:
		return s
	case isUpgrade(r):
		return http.StatusSwitchingProtocols
	default:
		return http.StatusOK
	}
}

// MetricsAddr is the metrics listener's address, or "" without one.
func (s *Server) MetricsAddr() string {
	if s.metricsSrv == nil {
		return ""
	}
	return s.metricsSrv.Addr()
}
