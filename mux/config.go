package mux

import (
	"time"

	"github.com/xtaci/smux"
)

// Config returns the smux configuration both ends of a session use.
//
// Version 2 is required for per-stream flow control. MaxFrameSize is the
// protocol's ceiling (65535): larger frames mean fewer frame headers and
// fewer TLS records per byte. MaxStreamBuffer bounds what one stream may
// have in flight; 1 MiB keeps a single loopback tunnel from stalling on
// window updates while MaxReceiveBuffer caps a whole session at 64 MiB.
// smux allocates stream buffers only when data arrives, so an idle stream
// costs a few hundred bytes whatever these limits are (docs/perf.md).
func Config() *smux.Config {
	c := smux.DefaultConfig()
	c.Version = 2
	c.MaxFrameSize = 65535
	c.MaxStreamBuffer = 1 << 20
	c.MaxReceiveBuffer = 64 << 20
	c.KeepAliveInterval = 10 * time.Second
	c.KeepAliveTimeout = 30 * time.Second
	return c
}
