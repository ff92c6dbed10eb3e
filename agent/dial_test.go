package agent

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// A relay address that accepts TCP and never answers the TLS handshake
// (a wedged relay, a middlebox) must fail the dial within the handshake
// bound, with an error that says so, so that Run logs it and retries.
func TestDialRelayHandshakeTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // accepts and stays silent
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		ln.Close()
		wg.Wait()
		for _, c := range held {
			c.Close()
		}
	}()

	const bound = time.Second
	a := &Agent{cfg: Config{HandshakeTimeout: bound}, id: &Identity{AgentID: "test", RelayAddr: ln.Addr().String()}, log: slog.New(slog.DiscardHandler)}
	type result struct {
		c   net.Conn
		err error
	}
	res := make(chan result, 1)
	start := time.Now()
	go func() {
		c, _, err := a.dialRelay(context.Background(), netip.AddrPort{}, []byte{0})
		res <- result{c, err}
	}()
	var r result
	select {
	case r = <-res:
	case <-time.After(bound + 10*time.Second):
		// Unblock the dial so that it ends with the test.
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
		<-res
		t.Fatalf("dial still waiting for the TLS handshake after %v (bound %v)", time.Since(start).Round(time.Millisecond), bound)
	}
	took := time.Since(start)
	if r.err == nil {
		r.c.Close()
		t.Fatal("dial succeeded against a silent listener")
	}
	if !strings.Contains(r.err.Error(), "TLS handshake: no answer within 1s") {
		t.Errorf("error %q does not say the handshake timed out", r.err)
	}
	if took < bound {
		t.Errorf("dial failed after %v, before the %v bound", took, bound)
	}
	t.Logf("dial failed after %v (bound %v): %v", took.Round(time.Millisecond), bound, r.err)
}
