// Package testnet holds the loopback servers tests of several packages
// stand up as devices: a listener whose connections each get a handler
// goroutine, all of which end (and are waited for) when the test does, so
// goleak-checked packages see no leftovers.
package testnet

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Serve listens on a free 127.0.0.1 port and runs handle for every
// connection on a goroutine of its own; handle owns the connection and
// need not close it. The listener closes at the end of the test, and
// cleanup waits for the handlers, so a handler must return once its peer
// is gone.
func Serve(tb testing.TB, handle func(net.Conn)) *net.TCPAddr {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	tb.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().(*net.TCPAddr)
}

// Echo is a handler that echoes to EOF, then half-closes: a device that
// answers everything it is sent.
func Echo(c net.Conn) {
	io.Copy(c, c)
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}
