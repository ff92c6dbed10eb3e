package agent

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nanodems/connector/mux"
)

// openTCP opens a TCP tunnel to host:port through h and returns the
// agent's status.
func (h *udpHarness) openTCP(t *testing.T, host string, port uint16) error {
	t.Helper()
	st, err := h.relay.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := mux.WriteHeader(st, mux.Header{Host: host, Port: port}); err != nil {
		t.Fatal(err)
	}
	return mux.ReadStatus(st)
}

// countingListener accepts connections on addr and counts them.
func countingListener(t *testing.T, addr string) (uint16, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return uint16(ln.Addr().(*net.TCPAddr).Port), &n
}

// ownAddr is a non-loopback address of one of this host's interfaces, or
// an invalid Addr if it has none.
func ownAddr() netip.Addr {
	ifAddrs, _ := net.InterfaceAddrs()
	for _, ia := range ifAddrs {
		p, err := netip.ParsePrefix(ia.String())
		if err == nil && p.Addr().Is4() && !p.Addr().IsLoopback() && !p.Addr().IsLinkLocalUnicast() {
			return p.Addr()
		}
	}
	return netip.Addr{}
}

func TestAgentRefusesLocalTargets(t *testing.T) {
	port, accepted := countingListener(t, ":0") // every interface, loopback included
	cases := map[string]string{
		"127.0.0.1":       "127.0.0.1: loopback targets are refused by this agent (--allow-loopback)",
		"localhost":       "localhost resolves to ",
		"::1":             "::1: loopback targets are refused",
		"0.0.0.0":         "0.0.0.0: unspecified targets are refused",
		"169.254.169.254": "169.254.169.254: cloud metadata targets are refused",
		"169.254.7.7":     "169.254.7.7: link-local targets are refused",
		"224.0.0.1":       "224.0.0.1: multicast targets are refused",
	}
	own := ownAddr()
	if own.IsValid() {
		cases[own.String()] = own.String() + ": the agent host's own addresses are refused by this agent (--allow-loopback)"
	} else {
		t.Log("no non-loopback interface address: the own-address case is not checked")
	}
	var targets []mux.Target
	for host := range cases {
		targets = append(targets, mux.Target{Host: host, Port: port})
	}
	h := newUDPHarness(t, targets...)
	h.a.cfg.AllowLoopback = false
	for host, reason := range cases {
		var se *mux.StatusError
		err := h.openTCP(t, host, port)
		if !errors.As(err, &se) || se.Code != mux.NotAllowed || !strings.Contains(se.Reason, reason) {
			t.Errorf("TCP to %s: %v, want %v %q", host, err, mux.NotAllowed, reason)
		}
		_, err = h.open(t, host, port)
		if !errors.As(err, &se) || se.Code != mux.NotAllowed || !strings.Contains(se.Reason, "refused by this agent (--allow-loopback)") {
			t.Errorf("UDP to %s: %v, want %v", host, err, mux.NotAllowed)
		}
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("the target accepted %d connections from a refusing agent", n)
	}
}

func TestAgentAllowLoopback(t *testing.T) {
	port, _ := countingListener(t, "127.0.0.1:0")
	h := newUDPHarness(t, mux.Target{Host: "127.0.0.1", Port: port})
	if err := h.openTCP(t, "127.0.0.1", port); err != nil {
		t.Fatalf("with AllowLoopback, TCP to 127.0.0.1: %v", err)
	}
	if _, err := h.open(t, "127.0.0.1", port); err != nil {
		t.Fatalf("with AllowLoopback, UDP to 127.0.0.1: %v", err)
	}
}
