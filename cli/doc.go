// Package cli is the operator side: it reaches devices through a relay.
//
// DialTunnel opens one raw WebSocket tunnel to a handle (/api/tunnel).
// Open and Run are nanodems-tunnel run: a CLI session (ops_ token) whose
// bind plan maps every device port of the session's sites to a local
// 127.0.0.X:port, served by OS listeners where the OS allows and by one
// SOCKS5 + HTTP CONNECT port everywhere, over one multiplexed connection
// to the relay (/api/cli/mux). Tunnel.DialPlan is the same path for Go
// programs and the netstack (docs/cli.md).
package cli
