package mux

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MsgType tells control messages apart.
type MsgType uint8

const (
	MsgHello        MsgType = 1 // agent → relay, first message
	MsgHelloAck     MsgType = 2 // relay → agent
	MsgHeartbeat    MsgType = 3 // agent → relay, every 5 s
	MsgAllowlist    MsgType = 4 // relay → agent
	MsgAllowlistAck MsgType = 5 // agent → relay
	// MsgGoAway (relay → agent) asks the agent to connect again, to
	// another relay when it knows one, because this one is draining. The
	// agent keeps the session for the tunnels it carries until the relay
	// closes it. An agent that predates the message takes it for a bad
	// one and ends the session, which reconnects it all the same.
	MsgGoAway MsgType = 6
)

// MaxControlLen bounds one control message body. The largest message is an
// allowlist push: 5,000 cameras × 4 ports × ~40 bytes of JSON is 800 KB, so
// 8 MiB leaves room while refusing a peer that asks us to buffer gigabytes.
const MaxControlLen = 8 << 20

// ErrBadControl is wrapped by every control decoding failure.
var ErrBadControl = errors.New("mux: bad control message")

// Hello is the agent's first message on the control stream.
type Hello struct {
	AgentID          string `json:"agent_id"`
	Version          string `json:"version"`
	AllowlistVersion int64  `json:"allowlist_version"`
	// Features lists what the agent supports beyond the base protocol
	// (FeatureLANRuns); an older agent sends none.
	Features []string `json:"features,omitempty"`
}

// HelloAck answers a Hello. When OK is false the relay closes the session
// after sending it; Permanent tells the agent not to retry (revoked,
// unknown agent) but to say so and stop.
type HelloAck struct {
	OK        bool   `json:"ok"`
	Reason    string `json:"reason,omitempty"`
	Permanent bool   `json:"permanent,omitempty"`
	Relay     string `json:"relay,omitempty"` // the relay node that holds the session
	// HeartbeatSeconds is the interval the relay expects.
	HeartbeatSeconds int `json:"heartbeat_seconds"`
}

// Heartbeat carries the agent's counters.
type Heartbeat struct {
	BytesIn       uint64 `json:"bytes_in"`  // from targets toward the relay
	BytesOut      uint64 `json:"bytes_out"` // from the relay toward targets
	ActiveStreams int64  `json:"active_streams"`
	TunnelsTotal  uint64 `json:"tunnels_total"`
	// Counting says where the agent counts bytes: "ebpf" (in the kernel)
	// or "userspace" (in its copy loop); an older agent sends none.
	Counting string `json:"counting,omitempty"`
	// UDPDrops counts the camera datagrams the agent's UDP relays lost
	// to a full socket buffer (the host did not schedule the reader in
	// time), since the agent started.
	UDPDrops uint64 `json:"udp_drops,omitempty"`
	// Stats are the counters per device port (agent/stats). A relay that
	// predates them ignores the field; an agent that predates them sends
	// none.
	Stats *AgentStats `json:"stats,omitempty"`
}

// AgentStats are an agent's counters per device port. Totals run since
// Epoch, the counters' first start; Boot counts the agent's starts within
// it. A port's Base is its totals when this boot started, so what this
// boot counted is Totals − Base: the relay needs no earlier heartbeat to
// know what is new after a restart (docs/stats.md).
type AgentStats struct {
	Epoch string `json:"epoch"`
	Boot  uint64 `json:"boot"`
	// Counting says how bytes are counted: "userspace" (the copy loop) or
	// "ebpf" (the kernel).
	Counting string `json:"counting,omitempty"`
	// Full is set when Ports holds every port with counters; otherwise
	// it holds only those that changed since the session's previous
	// heartbeat.
	Full  bool        `json:"full,omitempty"`
	Ports []PortStats `json:"ports"`
}

// PortStats are the counters of one device port.
type PortStats struct {
	Host   string     `json:"host"`
	Port   uint16     `json:"port"`
	Totals StatTotals `json:"totals"`
	Base   StatTotals `json:"base"`
	Today  StatTotals `json:"today"` // since UTC midnight, restarts included
	Active int64      `json:"active"`
}

// StatTotals are running counts of one device port.
type StatTotals struct {
	BytesIn     uint64 `json:"bytes_in"`  // device → relay
	BytesOut    uint64 `json:"bytes_out"` // relay → device
	OpenedOK    uint64 `json:"opened_ok,omitempty"`
	Refused     uint64 `json:"refused,omitempty"`
	Unreachable uint64 `json:"unreachable,omitempty"`
	NotAllowed  uint64 `json:"not_allowed,omitempty"`
	Dedicated   uint64 `json:"dedicated,omitempty"` // moved to a dedicated connection
}

// Sub is t − u field by field, each floored at zero.
func (t StatTotals) Sub(u StatTotals) StatTotals {
	d := func(a, b uint64) uint64 {
		if a < b {
			return 0
		}
		return a - b
	}
	return StatTotals{d(t.BytesIn, u.BytesIn), d(t.BytesOut, u.BytesOut), d(t.OpenedOK, u.OpenedOK), d(t.Refused, u.Refused),
		d(t.Unreachable, u.Unreachable), d(t.NotAllowed, u.NotAllowed), d(t.Dedicated, u.Dedicated)}
}

// Add is t + u field by field.
func (t StatTotals) Add(u StatTotals) StatTotals {
	return StatTotals{t.BytesIn + u.BytesIn, t.BytesOut + u.BytesOut, t.OpenedOK + u.OpenedOK, t.Refused + u.Refused,
		t.Unreachable + u.Unreachable, t.NotAllowed + u.NotAllowed, t.Dedicated + u.Dedicated}
}

// Max is the larger of t and u field by field.
func (t StatTotals) Max(u StatTotals) StatTotals {
	return StatTotals{max(t.BytesIn, u.BytesIn), max(t.BytesOut, u.BytesOut), max(t.OpenedOK, u.OpenedOK), max(t.Refused, u.Refused),
		max(t.Unreachable, u.Unreachable), max(t.NotAllowed, u.NotAllowed), max(t.Dedicated, u.Dedicated)}
}

// IsZero reports whether every count is zero.
func (t StatTotals) IsZero() bool { return t == StatTotals{} }

// Target is one (host, port) an agent may dial.
type Target struct {
	Host string `json:"host"`
	Port uint16 `json:"port"`
}

// Allowlist is the full set of targets of a site at one version.
type Allowlist struct {
	Version int64    `json:"version"`
	Targets []Target `json:"targets"`
}

// AllowlistAck tells the relay what the agent did with a push.
type AllowlistAck struct {
	Version  int64  `json:"version"`  // the version pushed
	Accepted bool   `json:"accepted"` // false: refused, see Reason
	Held     int64  `json:"held"`     // the version the agent holds now
	Reason   string `json:"reason,omitempty"`
}

// GoAway is the body of MsgGoAway.
type GoAway struct {
	Reason string `json:"reason,omitempty"` // for the agent's log
}

// WriteMessage writes one control message: type u8 | len u32 | JSON body.
func WriteMessage(w io.Writer, t MsgType, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("mux: encode control %d: %w", t, err)
	}
	if len(body) > MaxControlLen {
		return fmt.Errorf("mux: control %d of %d bytes exceeds %d", t, len(body), MaxControlLen)
	}
	b := make([]byte, 5, 5+len(body))
	b[0] = byte(t)
	binary.BigEndian.PutUint32(b[1:], uint32(len(body)))
	_, err = w.Write(append(b, body...))
	return err
}

// ReadMessage reads one control message and returns its type and raw body.
func ReadMessage(r io.Reader) (MsgType, []byte, error) {
	var fixed [5]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return 0, nil, err // io.EOF between messages is a clean close
	}
	t := MsgType(fixed[0])
	if t < MsgHello || t > lastMsgType {
		return 0, nil, fmt.Errorf("%w: unknown type %d", ErrBadControl, t)
	}
	n := binary.BigEndian.Uint32(fixed[1:])
	if n > MaxControlLen {
		return 0, nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrBadControl, n, MaxControlLen)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, fmt.Errorf("%w: body: %v", ErrBadControl, err)
	}
	return t, body, nil
}

// Decode unmarshals a control body into v, wrapping failures in
// ErrBadControl.
func Decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: %v", ErrBadControl, err)
	}
	return nil
}
