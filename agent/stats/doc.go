// Package stats keeps an agent's counters per device port (host:port):
// bytes each way, tunnels opened by result, tunnels active and moved to a
// dedicated connection. The totals run since the counters' epoch, the
// day the state file was first written, and survive restarts through
// that file (stats.json in the agent's state directory), so "today" on
// the relay and at the agent does not restart with the service.
//
// Byte counting enters through Counter: the tunnel code, or a kernel
// source counting the same quantity (TCP payload bytes), calls Add on the
// Counter of the port a tunnel reaches.
package stats
