// Package relay is the cloud side: the agent listener, the registry of
// agent sessions, Dial (the one way to reach a device port), and the
// operator edge (management API, enrollment, WebSocket tunnels).
//
// A tunnel is a net.Conn. Every access path calls Server.Dial and then uses
// ordinary Go networking on the result, so no access path knows about smux,
// pods or agents (../DESIGN.md, "One idea carries the product").
package relay
