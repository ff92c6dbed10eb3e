// Package cli is the operator side: it reaches devices through a relay.
// Today it opens raw WebSocket tunnels (/api/tunnel/{handle}); the
// nanodems-tunnel bind plan and local listeners build on it (issue 5).
package cli
