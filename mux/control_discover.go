package mux

// Runs on the LAN: the relay asks an agent to look for cameras (ONVIF
// WS-Discovery) or to probe the ports of an address range, and the agent
// streams what it finds back on the control stream. A run is named by the
// relay (RunID); every RunResult and the one RunDone carry it.
//
// An agent that predates these messages would take one for a protocol
// error and drop its session, so the relay sends them only to an agent
// whose Hello lists FeatureLANRuns; to any other it answers "agent too
// old" without sending anything.

const (
	MsgDiscover  MsgType = 7  // relay → agent: run WS-Discovery
	MsgProbe     MsgType = 8  // relay → agent: probe the ports of a range
	MsgRunResult MsgType = 9  // agent → relay: results of a run, so far
	MsgRunDone   MsgType = 10 // agent → relay: a run ended

	// lastMsgType is the highest type ReadMessage accepts.
	lastMsgType = MsgRunDone
)

// FeatureLANRuns in Hello.Features says the agent runs MsgDiscover and
// MsgProbe.
const FeatureLANRuns = "lan-runs"

// MaxRunFound bounds the hosts one run reports: a /22 of cameras, or a
// LAN's ONVIF devices, is well under it; more is a flood.
const MaxRunFound = 2048

// DiscoverRequest asks for one WS-Discovery run.
type DiscoverRequest struct {
	RunID string `json:"run_id"`
	// WindowMillis is how long the agent collects ProbeMatches; the agent
	// clamps it (default 3 s, at most 10 s).
	WindowMillis int `json:"window_ms,omitempty"`
}

// ProbeRequest asks the agent to connect (and close) to each address of
// Range on each of Ports.
type ProbeRequest struct {
	RunID string `json:"run_id"`
	Range string `json:"range"` // an IP, a.b.c.d-e.f.g.h or a CIDR; at most iprange.MaxAddrs
	Ports []int  `json:"ports"`
	// TimeoutMillis bounds each connect; the agent clamps it (default
	// 1 s, at most 5 s).
	TimeoutMillis int `json:"timeout_ms,omitempty"`
}

// Found is one host a run found.
type Found struct {
	Host string `json:"host"`
	// Ports: for a probe, the ports that accepted a connection; for
	// discovery, the ports the device advertises in its XAddrs.
	Ports        []int    `json:"ports,omitempty"`
	Name         string   `json:"name,omitempty"`
	Manufacturer string   `json:"manufacturer,omitempty"`
	Model        string   `json:"model,omitempty"`
	Hardware     string   `json:"hardware,omitempty"`
	XAddrs       []string `json:"xaddrs,omitempty"`
	// NeedsLogin: the device refused GetDeviceInformation without
	// credentials.
	NeedsLogin bool `json:"needs_login,omitempty"`
}

// RunResult carries hosts found since the last RunResult of the run, and
// the progress: Done of Total steps (a probe: addresses finished).
type RunResult struct {
	RunID string  `json:"run_id"`
	Found []Found `json:"found,omitempty"`
	Done  int     `json:"done"`
	Total int     `json:"total"`
}

// RunDone ends a run. Error is set when it could not run (a refused
// range, no usable interface).
type RunDone struct {
	RunID string `json:"run_id"`
	Error string `json:"error,omitempty"`
	Done  int    `json:"done"`
	Total int    `json:"total"`
}
