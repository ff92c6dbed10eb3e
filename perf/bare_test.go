package main

import (
	"bytes"
	"crypto/rand"
	"io"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// serveLoop accepts on ln until it is closed, handling each connection
// on its own goroutine; the cleanup closes ln and waits for every
// handler.
func serveLoop(t *testing.T, ln net.Listener, handle func(net.Conn)) {
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { handle(c) })
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
}

// TestBareChain: the three hops of the CLI's shape (plain→TLS, TLS→TLS,
// TLS→plain), and of the blind chain (plain→TLS, plain, TLS→plain), in
// front of an echo carry 4 MiB both ways unchanged, pass the client's
// half-close through to the echo and back, and end their goroutines with
// the connection (TestMain checks for leaks).
func TestBareChain(t *testing.T) {
	for _, chain := range []string{pathBare3, pathBare3Blind} {
		t.Run(chain, func(t *testing.T) { testBareChain(t, bareChains[chain]) })
	}
}

func testBareChain(t *testing.T, hops []string) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveLoop(t, echo, func(c net.Conn) {
		defer c.Close()
		io.Copy(c, c)
		c.(*net.TCPConn).CloseWrite()
	})
	to := echo.Addr().String()
	for i := len(hops) - 1; i >= 0; i-- {
		in, out, _ := strings.Cut(hops[i], ">")
		ln, dial, err := hopEnds(in, "127.0.0.1:0", out, to, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		serveLoop(t, ln, func(c net.Conn) { hop(c, dial) })
		to = ln.Addr().String()
	}

	c, err := net.Dial("tcp", to)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	msg := make([]byte, 4<<20)
	rand.Read(msg)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c) // ends only when the half-close came back
	if err != nil {
		t.Fatalf("read after %d bytes: %v", len(got), err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo through the chain differs: %d bytes back of %d", len(got), len(msg))
	}
}

func TestServeHopRefusesBadSpecs(t *testing.T) {
	for _, spec := range []string{"", "127.0.0.1:1>127.0.0.1:2", "udp:127.0.0.1:1>plain:127.0.0.1:2", "plain:127.0.0.1:1", "tls:127.0.0.1:1>ssh:127.0.0.1:2"} {
		if err := serveHop(spec); err == nil || !strings.Contains(err.Error(), "want plain|tls") {
			t.Errorf("serveHop(%q) = %v, want the spec's format", spec, err)
		}
	}
}

// TestPeersShapeTable: the bare chains carry only throughput and round
// trips, and the shape table reads each tunnel against its shape and the
// CLI's target against its own shape's chain.
func TestPeersShapeTable(t *testing.T) {
	us := time.Microsecond
	bare := func(mbps float64, p50 time.Duration) peerRun {
		return peerRun{MBps: map[int]float64{1: mbps, 8: mbps, 64: mbps}, P50: p50, P99: 2 * p50}
	}
	r := &peersReport{cfg: &config{repeats: 1}, runs: map[string][]peerRun{
		pathCLI:        {fakeRun(150, 150, 500*us, 1000*us, 1000, 80, 10)},
		pathFrpTCP:     {fakeRun(200, 200, 400*us, 800*us, 500, 100, 10)},
		pathFrpSTCP:    {fakeRun(100, 100, 600*us, 1200*us, 400, 200, 20)},
		pathBare2:      {bare(400, 200*us)},
		pathBare3:      {bare(250, 300*us)},
		pathBare3Blind: {bare(320, 250*us)},
	}}
	r.compute()
	tp1, p50, rss, opens := fig("throughput, 1 stream"), fig("64 B round trip p50"), fig("RSS of all tunnel processes, 1,000 connections echoing 64 B every 100 ms"), fig("connections per second")
	for _, path := range []string{pathBare2, pathBare3, pathBare3Blind} {
		for _, i := range []int{rss, opens} {
			if v := r.med[path][i]; !math.IsNaN(v) {
				t.Errorf("%s has a %q figure: %v", path, peerFigures[i].name, v)
			}
		}
	}
	rows := r.shapeRows()
	if len(rows) != 5 {
		t.Fatalf("%d shape rows, want 5 (three throughputs, two round trips)", len(rows))
	}
	byName := map[string][]string{}
	for _, row := range rows {
		if len(row) != len(shapeHeader) {
			t.Fatalf("row %q has %d cells for %d headers", row[0], len(row), len(shapeHeader))
		}
		byName[row[0]] = row
	}
	// 1 stream: bare 3 ÷ bare 2 = 250/400, frp ÷ bare 2 = 200/400, CLI ÷
	// bare 3 = 150/250, target 1.3 × 200 ÷ 250 = 1.04 and ÷ the blind
	// chain 1.3 × 200 ÷ 320 = 0.81.
	want := []string{"throughput, 1 stream", "400 MB/s", "250 MB/s", "320 MB/s", "0.62×", "0.50×", "0.60×", "1.04×", "0.81×"}
	if got := byName[peerFigures[tp1].name]; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("1-stream shape row %q, want %q", got, want)
	}
	// Round trip p50: target 0.8 × 400 ÷ 300 = 1.07, ÷ the blind chain
	// 0.8 × 400 ÷ 250 = 1.28; the 64-stream row has no target.
	if got := byName[peerFigures[p50].name]; got[7] != "1.07×" || got[8] != "1.28×" || got[4] != "1.50×" || got[3] != "250 µs" {
		t.Errorf("p50 shape row %q", got)
	}
	if got := byName["throughput, 64 streams"]; got[7] != "–" || got[8] != "–" {
		t.Errorf("64-stream row has a target: %q", got[7:])
	}
	// Without the blind chain its cells are empty and the rest stands.
	delete(r.runs, pathBare3Blind)
	r.compute()
	if got := r.shapeRows()[0]; got[3] != "–" || got[8] != "–" || got[7] != "1.04×" {
		t.Errorf("1-stream row without the blind chain %q", got)
	}
	md := r.markdown()
	if !strings.Contains(md, "## What each shape costs") || !strings.Contains(md, "| bare 2 hops (frp tcp's shape) |") {
		t.Error("markdown lacks the shape section")
	}
	// Without the bare chains there is no section.
	delete(r.runs, pathBare2)
	r.compute()
	if r.shapeRows() != nil || strings.Contains(r.markdown(), "What each shape costs") {
		t.Error("a shape section without the bare 2-hop chain")
	}
}
