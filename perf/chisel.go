package main

// chisel, the other tunnel of the peers figure: a reverse port forward
// (client → chisel server's listener → an SSH channel over one WebSocket
// → chisel client → echo), frp tcp's shape with SSH instead of TLS +
// yamux. Built from the module perf/peers/chisel, apart from frp's, so
// that neither's pinned dependencies move the other's build.

import (
	"context"
	"debug/buildinfo"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

const pathChisel = "chisel" // client → chisel server's reverse listener → SSH over WebSocket → chisel client → echo

// chiselAuth is the one user of the run's chisel server (loopback only,
// never reused): chisel's counterpart of frp's auth.token.
const chiselAuth = "nanodems:perf-chisel-secret"

// chisel is a running chisel server with a chisel client beside the echo
// target, which asks the server for a reverse forward to it.
type chisel struct {
	bin, dir         string
	serverAddr       string // the server's HTTP (WebSocket) port
	fwdAddr          string // the server's listener of the reverse forward
	echoAddr         string
	server, client   *proc
	env              []string // extra environment of both (-server-env chisel:K=V)
	serverArgs, args []string
}

// buildChisel builds chisel from perf/peers/chisel into a cache directory
// named after that module's go.mod and go.sum, unless it is already there.
func buildChisel(ctx context.Context, root string) (string, error) {
	return buildPeer(ctx, root, "perf/peers/chisel", "chisel", nil, "github.com/jpillora/chisel")
}

// chiselVersion is the version of chisel's module in the binary (chisel
// itself prints the placeholder its release builds overwrite).
func chiselVersion(bin string) string {
	info, err := buildinfo.ReadFile(filepath.Join(bin, "chisel"))
	if err != nil {
		return "?"
	}
	// The main package is chisel's own, so its module is the main one.
	if info.Main.Path == "github.com/jpillora/chisel" {
		return info.Main.Version
	}
	return "?"
}

// startChisel starts the server and the client in dir (made if need be)
// with chisel's defaults but for addresses and a user (chisel's
// counterpart of frp's token); it returns once a byte echoes through the
// forward.
func startChisel(ctx context.Context, bin, dir, echoAddr string, env []string) (*chisel, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c := &chisel{bin: bin, dir: dir, echoAddr: echoAddr, env: env}
	var err error
	for _, a := range []*string{&c.serverAddr, &c.fwdAddr} {
		if *a, err = freeAddr(); err != nil {
			return nil, err
		}
	}
	host, port, _ := net.SplitHostPort(c.serverAddr)
	c.serverArgs = []string{"server", "--host", host, "--port", port, "--reverse", "--auth", chiselAuth}
	c.args = []string{"client", "--auth", chiselAuth, "http://" + c.serverAddr, "R:" + c.fwdAddr + ":" + echoAddr}
	if err := c.start(ctx); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// start starts (or restarts) both processes and waits until the forward
// echoes.
func (c *chisel) start(ctx context.Context) error {
	exe := filepath.Join(c.bin, "chisel")
	var err error
	if c.server, err = children.start(c.dir, "chisel-server", exe, c.serverArgs, c.env); err != nil {
		return err
	}
	if err := waitListen(ctx, c.server, c.serverAddr); err != nil {
		return err
	}
	if c.client, err = children.start(c.dir, "chisel-client", exe, c.args, c.env); err != nil {
		return err
	}
	if err := waitEcho(ctx, c.client, c.fwdAddr); err != nil {
		return fmt.Errorf("chisel reverse forward: %w", err)
	}
	return nil
}

func (c *chisel) stop() {
	for _, p := range []*proc{c.client, c.server} {
		if p != nil {
			p.stop(5 * time.Second)
		}
	}
}

func (c *chisel) restart(ctx context.Context) error {
	c.stop()
	return c.start(ctx)
}
