package stats

import "github.com/nanodems/connector/mux"

// Changes trims snapshots to the ports that changed since the previous
// one, so that a heartbeat of an agent with thousands of idle cameras
// stays small. One per session: the first snapshot goes out whole, and a
// new relay learns every port.
type Changes struct {
	last map[string]mux.PortStats
}

// Next returns the ports of snap that differ from the previous snapshot
// (all of them, Full set, the first time).
func (c *Changes) Next(snap mux.AgentStats) mux.AgentStats {
	first := c.last == nil
	if first {
		c.last = make(map[string]mux.PortStats, len(snap.Ports))
	}
	out := snap
	out.Full = first
	out.Ports = nil
	for _, p := range snap.Ports {
		k := key(p.Host, p.Port)
		if prev, ok := c.last[k]; first || !ok || prev != p {
			out.Ports = append(out.Ports, p)
		}
		c.last[k] = p
	}
	if out.Ports == nil {
		out.Ports = []mux.PortStats{}
	}
	return out
}
