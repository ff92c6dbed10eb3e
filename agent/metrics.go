package agent

import (
	"fmt"
	"io"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nanodems/connector/internal/metrics"
	"github.com/nanodems/connector/mux"
)

// The agent's Prometheus series (docs/metrics.md), served on its own
// loopback listener when Config.MetricsAddr is set. They are the same
// counters the heartbeat carries, plus how tunnel opens ended; the data
// path only adds to atomics, and the collector reads them when scraped.

// openResult is how the agent answered a tunnel open.
type openResult uint8

const (
	openOK          openResult = iota
	openRefused                // the device refused the connection
	openUnreachable            // the device did not answer, or the agent could not dial
	openNotAllowed             // not in the allowlist, or a local address the agent refuses
	numOpenResults
)

var openResultNames = [numOpenResults]string{"ok", "refused", "unreachable", "not_allowed"}

func resultOfCode(c mux.Code) openResult {
	switch c {
	case mux.OK:
		return openOK
	case mux.Refused:
		return openRefused
	case mux.NotAllowed:
		return openNotAllowed
	default:
		return openUnreachable
	}
}

// openCounts are the agent's tunnel opens by result, and its UDP relays.
type openCounts struct {
	results   [numOpenResults]atomic.Uint64
	udpActive atomic.Int64
	udpOpened atomic.Uint64
}

// answer writes the status of a tunnel open and counts it: every answer
// to the relay's open goes through here.
func (a *Agent) answer(w io.Writer, c mux.Code, reason string) error {
	a.opens.results[resultOfCode(c)].Add(1)
	return mux.WriteStatus(w, c, reason)
}

var (
	descAgentOpened = prometheus.NewDesc("connector_agent_tunnels_opened_total",
		"Tunnel opens the relay asked this agent for, by how the agent answered.", []string{"result"}, nil)
	descAgentActive = prometheus.NewDesc("connector_agent_tunnels_active",
		"Tunnels open through this agent now (UDP relays included).", nil, nil)
	descAgentBytes = prometheus.NewDesc("connector_agent_tunnel_bytes_total",
		"Bytes the agent's tunnels carried, by direction (to_device, from_device).", []string{"direction"}, nil)
	descAgentUDPActive = prometheus.NewDesc("connector_agent_udp_relays_active",
		"UDP relays (RTP/RTCP for the RTSP gateway) open now.", nil, nil)
	descAgentUDPOpened = prometheus.NewDesc("connector_agent_udp_relays_opened_total",
		"UDP relays opened.", nil, nil)
	descAgentSessions = prometheus.NewDesc("connector_agent_relay_sessions",
		"Sessions to relays up now: 1 when connected, 2 while moving to another relay.", nil, nil)
)

// Collector is the agent's series for a Prometheus registry.
func (a *Agent) Collector() prometheus.Collector { return agentCollector{a} }

type agentCollector struct{ a *Agent }

func (c agentCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAgentOpened, descAgentActive, descAgentBytes, descAgentUDPActive, descAgentUDPOpened, descAgentSessions} {
		ch <- d
	}
}

func (c agentCollector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	for r := range numOpenResults {
		ch <- prometheus.MustNewConstMetric(descAgentOpened, prometheus.CounterValue, float64(a.opens.results[r].Load()), openResultNames[r])
	}
	h := a.Counters()
	ch <- prometheus.MustNewConstMetric(descAgentActive, prometheus.GaugeValue, float64(h.ActiveStreams))
	ch <- prometheus.MustNewConstMetric(descAgentBytes, prometheus.CounterValue, float64(h.BytesOut), "to_device")
	ch <- prometheus.MustNewConstMetric(descAgentBytes, prometheus.CounterValue, float64(h.BytesIn), "from_device")
	ch <- prometheus.MustNewConstMetric(descAgentUDPActive, prometheus.GaugeValue, float64(a.opens.udpActive.Load()))
	ch <- prometheus.MustNewConstMetric(descAgentUDPOpened, prometheus.CounterValue, float64(a.opens.udpOpened.Load()))
	ch <- prometheus.MustNewConstMetric(descAgentSessions, prometheus.GaugeValue, float64(a.sessions.Load()))
}

// serveMetrics serves the agent's series on Config.MetricsAddr until
// stop.
func (a *Agent) serveMetrics() (stop func(), err error) {
	reg := metrics.NewRegistry()
	reg.MustRegister(a.Collector())
	srv, err := metrics.Listen(a.cfg.MetricsAddr, reg, a.log)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	addr := srv.Addr()
	a.metricsAddr.Store(&addr)
	return func() { srv.Close() }, nil
}

// MetricsAddr is the address the agent's metrics listener is on while Run
// runs with Config.MetricsAddr, else "".
func (a *Agent) MetricsAddr() string {
	if p := a.metricsAddr.Load(); p != nil {
		return *p
	}
	return ""
}
