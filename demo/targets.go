package demo

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/nanodems/connector/internal/acceptloop"
	"github.com/nanodems/connector/internal/pipe"
)

// Echo is a TCP echo server that honours half-close: when the client stops
// sending, it finishes echoing and then closes its write side.
type Echo struct {
	ln net.Listener
	wg sync.WaitGroup
}

// StartEcho listens on addr (e.g. "127.0.0.1:0").
func StartEcho(addr string) (*Echo, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("echo target: %w", err)
	}
	e := &Echo{ln: ln}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		acceptloop.Serve(context.Background(), ln, slog.Default().With("listener", "echo"), func(c net.Conn) {
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				defer c.Close()
				pipe.Copy(c, c, nil)
			}()
		})
	}()
	return e, nil
}

// Addr is the listening address.
func (e *Echo) Addr() *net.TCPAddr { return e.ln.Addr().(*net.TCPAddr) }

// Close stops accepting; open connections end when their clients close.
func (e *Echo) Close() error { return e.ln.Close() }
