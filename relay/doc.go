// Package relay is the cloud side: the agent listener, the registry of
// agent sessions, Dial (the one way to reach a device port), and the
// operator edge: management API, enrollment, sign-in, browser proxy,
// WebSocket tunnels, the CLI edge and the RTSP gateway, each a small part
// (edge.go lists them; api.go routes to them).
//
// A tunnel is a net.Conn. Every access path calls Dial through the Dialer
// interface and then uses ordinary Go networking on the result, so no
// access path knows about smux or agents (docs/architecture.md).
package relay
