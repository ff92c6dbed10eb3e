package main

// Bare chains: the shapes of two tunnels built from nothing but io.Copy
// and crypto/tls, one process per hop and one TLS connection per client
// connection (no multiplexing, no authorization, no counting). They
// measure what a shape costs on this machine before any tunnel's own
// work:
//
//   - bare-2: client → plain→TLS hop → TLS→plain hop → echo. Two
//     processes, one TLS leg: the shape of frp's tcp proxy (client →
//     frps in clear → TLS to frpc → target).
//   - bare-3: client → plain→TLS hop → TLS→TLS hop → TLS→plain hop →
//     echo. Three processes, two TLS legs: the shape of the CLI path
//     (client → nanodems-tunnel → TLS to the relay → TLS to the agent →
//     target).
//   - bare-3-blind: client → plain→TLS hop → plain forwarder → TLS→plain
//     hop → echo. The CLI path's three processes with one TLS session
//     from the first hop to the last, which the middle one forwards
//     without reading (io.Copy between two TCP sockets, which Linux
//     splices). It is the cheapest shape the CLI path's processes could
//     take while the client's leg stays encrypted: a relay that never
//     decrypts, multiplexes, authorizes or counts. What a design of the
//     CLI path could reach at best is bounded by it.
//
// Only throughput and the round trip measure them: with a TLS handshake
// per connection and no shared session, their connection rate and memory
// under load say nothing about a multiplexed tunnel's.

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nanodems/connector/internal/acceptloop"
	"github.com/nanodems/connector/relay/pki"
)

// Paths of the bare chains.
const (
	pathBare2      = "bare-2"
	pathBare3      = "bare-3"
	pathBare3Blind = "bare-3-blind"
)

// barePaths are the bare chains in the order a run measures them.
var barePaths = []string{pathBare2, pathBare3, pathBare3Blind}

// bareChains are the hops of each chain, from the client's side: each
// hop is "in>out", in and out being plain or tls.
var bareChains = map[string][]string{
	pathBare2:      {"plain>tls", "tls>plain"},
	pathBare3:      {"plain>tls", "tls>tls", "tls>plain"},
	pathBare3Blind: {"plain>tls", "plain>plain", "tls>plain"},
}

// startBare starts the hops of chain in front of echoAddr, the last one
// first, and returns the address the client dials.
func startBare(ctx context.Context, tmp, chain, echoAddr string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	hops := bareChains[chain]
	to := echoAddr
	for i := len(hops) - 1; i >= 0; i-- {
		from, err := freeAddr()
		if err != nil {
			return "", err
		}
		in, out, _ := strings.Cut(hops[i], ">")
		spec := in + ":" + from + ">" + out + ":" + to
		name := fmt.Sprintf("%s-hop-%d", chain, i+1)
		p, err := children.start(tmp, name, self, []string{"-serve-hop", spec}, nil, "listening")
		if err != nil {
			return "", err
		}
		if _, err := p.waitLine(ctx, "listening", 10*time.Second); err != nil {
			return "", err
		}
		to = from
	}
	return to, nil
}

// serveHop runs one hop of a bare chain, "IN:LISTEN>OUT:TARGET" with IN
// and OUT plain or tls: it accepts on LISTEN, dials TARGET for each
// connection and copies both ways with io.Copy, half-close kept.
func serveHop(spec string) error {
	from, to, ok := strings.Cut(spec, ">")
	inKind, listen, ok1 := strings.Cut(from, ":")
	outKind, target, ok2 := strings.Cut(to, ":")
	if !ok || !ok1 || !ok2 || !validHopKind(inKind) || !validHopKind(outKind) {
		return fmt.Errorf("want plain|tls:LISTEN>plain|tls:TARGET, got %q", spec)
	}
	dir, err := os.MkdirTemp("", "nanodems-perf-hop-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ln, dial, err := hopEnds(inKind, listen, outKind, target, dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "listening %s\n", ln.Addr())
	go acceptloop.Serve(context.Background(), ln, slog.Default(), func(c net.Conn) {
		go hop(c, dial)
	})
	waitSignal()
	return ln.Close()
}

// hopEnds returns a hop's listener on listen and its dialer of target. A
// TLS listener has a fresh self-signed certificate (written in dir); a
// TLS dial does not verify it (loopback, the harness's own processes).
func hopEnds(inKind, listen, outKind, target, dir string) (net.Listener, func() (net.Conn, error), error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, nil, err
	}
	if inKind == "tls" {
		cert, err := pki.LoadOrCreateSelfSigned(filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), []string{"127.0.0.1"})
		if err != nil {
			ln.Close()
			return nil, nil, err
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}})
	}
	dial := func() (net.Conn, error) { return net.Dial("tcp", target) }
	if outKind == "tls" {
		cfg := &tls.Config{InsecureSkipVerify: true}
		dial = func() (net.Conn, error) { return tls.Dial("tcp", target, cfg) }
	}
	return ln, dial, nil
}

func validHopKind(k string) bool { return k == "plain" || k == "tls" }

// hop copies c to a new connection from dial and back, until both
// directions end: the loop of every forwarder process of the harness
// (the bare chains, the floor's plain forwarders, the bridge figure's TLS
// hop).
func hop(c net.Conn, dial func() (net.Conn, error)) {
	defer c.Close()
	d, err := dial()
	if err != nil {
		return
	}
	defer d.Close()
	done := make(chan struct{})
	go func() {
		io.Copy(d, c)
		closeWrite(d)
		close(done)
	}()
	io.Copy(c, d)
	closeWrite(c)
	<-done
}

// closeWrite half-closes c: a TCP FIN, or TLS's close_notify.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}
