// Package mux is the wire protocol between a relay and its agents.
//
// An agent keeps ONE TLS 1.3 connection to the relay and runs one smux v2
// session over it. smux v2 gives every stream its own flow-control window,
// so one slow tunnel cannot starve the others (v1 shares one window per
// session). The agent opens the first stream as the control channel
// (control.go); every tunnel is one more stream, opened by the relay, that
// starts with a Header, is answered with a Status, and then carries raw
// bytes both ways with half-close preserved (stream.go; the copy loop that
// moves them is internal/pipe).
package mux
