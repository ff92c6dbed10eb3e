package agent

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/xtaci/smux"

	"github.com/nanodems/connector/agent/stats"
	"github.com/nanodems/connector/internal/testwait"
	"github.com/nanodems/connector/mux"
)

// udpHarness is an agent serving tunnels over an in-memory smux session,
// with the relay's end of the session for the test.
type udpHarness struct {
	a     *Agent
	relay *smux.Session
}

func newUDPHarness(t *testing.T, targets ...mux.Target) *udpHarness {
	t.Helper()
	al, err := LoadAllowlist(filepath.Join(t.TempDir(), "allowlist.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := al.Apply(mux.Allowlist{Version: 1, Targets: targets}); err != nil {
		t.Fatal(err)
	}
	st, err := stats.Open(filepath.Join(t.TempDir(), stats.FileName), nil)
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{cfg: Config{DialTimeout: 5 * time.Second, AllowLoopback: true}, allow: al, stats: st, log: slog.New(slog.DiscardHandler)}
	rc, ac := net.Pipe()
	agentSess, err := smux.Client(ac, mux.Config())
	if err != nil {
		t.Fatal(err)
	}
	relaySess, err := smux.Server(rc, mux.Config())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			st, err := agentSess.AcceptStream()
			if err != nil {
				return
			}
			wg.Add(1)
			go a.serveTunnel(st, nil, wg.Done)
		}
	}()
	t.Cleanup(func() {
		relaySess.Close()
		agentSess.Close()
		wg.Wait()
	})
	return &udpHarness{a: a, relay: relaySess}
}

// relayEnd is the relay's side of one UDP relay.
type relayEnd struct {
	s         *mux.Stream
	br        *bufio.Reader
	rtp, rtcp uint16
}

// open opens a FlagUDP tunnel to host:port; it returns the agent's
// refusal as an error.
func (h *udpHarness) open(t *testing.T, host string, port uint16) (*relayEnd, error) {
	t.Helper()
	st, err := h.relay.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	if err := mux.WriteHeader(st, mux.Header{Flags: mux.FlagUDP, Host: host, Port: port}); err != nil {
		t.Fatal(err)
	}
	reason, err := mux.ReadStatusReason(st)
	if err != nil {
		st.Close()
		return nil, err
	}
	rtp, rtcp, err := mux.ParseUDPPorts(reason)
	if err != nil {
		t.Fatal(err)
	}
	s := mux.NewStream(st)
	t.Cleanup(func() { s.Close() })
	return &relayEnd{s: s, br: bufio.NewReader(s), rtp: rtp, rtcp: rtcp}, nil
}

func (r *relayEnd) send(t *testing.T, ch byte, p []byte) {
	t.Helper()
	b, err := mux.AppendDatagram(nil, ch, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.s.Write(b); err != nil {
		t.Fatal(err)
	}
}

func (r *relayEnd) recv(t *testing.T) (byte, string) {
	t.Helper()
	r.s.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, mux.MaxDatagram)
	ch, n, err := mux.ReadDatagram(r.br, buf)
	if err != nil {
		t.Fatalf("relay reading a datagram: %v", err)
	}
	return ch, string(buf[:n])
}

func listenUDP(t *testing.T, ip string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func port(c *net.UDPConn) int { return c.LocalAddr().(*net.UDPAddr).Port }

func sendTo(t *testing.T, c *net.UDPConn, p uint16, msg string) {
	t.Helper()
	if _, err := c.WriteToUDP([]byte(msg), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(p)}); err != nil {
		t.Fatal(err)
	}
}

// recvFrom reads one datagram and checks where it came from.
func recvFrom(t *testing.T, c *net.UDPConn, fromPort uint16) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2048)
	n, from, err := c.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("camera reading a datagram: %v", err)
	}
	if from.Port != int(fromPort) {
		t.Fatalf("datagram from port %d, want the relay's %d", from.Port, fromPort)
	}
	return string(buf[:n])
}

func waitActive(t *testing.T, a *Agent, n int64) {
	t.Helper()
	if err := testwait.Until(10*time.Second, func() error {
		if got := a.Counters().ActiveStreams; got != n {
			return fmt.Errorf("agent has %d active tunnels, want %d", got, n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// liveRelay waits for the agent's live UDP relay (the agent registers it
// just after its OK status).
func liveRelay(t *testing.T, a *Agent) *udpRelay {
	t.Helper()
	var u *udpRelay
	testwait.For(t, 10*time.Second, "a live UDP relay", func() bool {
		a.live.Range(func(k, _ any) bool {
			if c, ok := k.(*liveTunnel).conn.(udpRelayConn); ok {
				u = c.u
			}
			return u == nil
		})
		return u != nil
	})
	return u
}

func TestUDPRelayAllowlist(t *testing.T) {
	h := newUDPHarness(t, mux.Target{Host: "127.0.0.1", Port: 554})
	_, err := h.open(t, "127.0.0.1", 555)
	var se *mux.StatusError
	if !errors.As(err, &se) || se.Code != mux.NotAllowed {
		t.Fatalf("UDP relay to a port not in the allowlist: %v, want %v", err, mux.NotAllowed)
	}
	if _, err := h.open(t, "127.0.0.2", 554); !errors.As(err, &se) || se.Code != mux.NotAllowed {
		t.Fatalf("UDP relay to a host not in the allowlist: %v, want %v", err, mux.NotAllowed)
	}
	if n := h.a.Counters().TunnelsTotal; n != 0 {
		t.Fatalf("%d tunnels counted for refusals", n)
	}
}

func TestUDPRelay(t *testing.T) {
	h := newUDPHarness(t, mux.Target{Host: "127.0.0.1", Port: 554})
	r, err := h.open(t, "127.0.0.1", 554)
	if err != nil {
		t.Fatal(err)
	}
	if r.rtp%2 != 0 || r.rtcp != r.rtp+1 {
		t.Logf("no even/odd pair: %d-%d (allowed, but unusual)", r.rtp, r.rtcp)
	}
	camRTP, camRTCP := listenUDP(t, "127.0.0.1"), listenUDP(t, "127.0.0.1")

	// Relay → camera: the camera's ports named, then a receiver report.
	r.s.Write(mux.AppendUDPPeer(nil, uint16(port(camRTP)), uint16(port(camRTCP))))
	r.send(t, mux.UDPChannelRTCP, []byte("rr"))
	if got := recvFrom(t, camRTCP, r.rtcp); got != "rr" {
		t.Fatalf("camera RTCP got %q", got)
	}

	// Camera → relay.
	sendTo(t, camRTP, r.rtp, "rtp-1")
	if ch, got := r.recv(t); ch != mux.UDPChannelRTP || got != "rtp-1" {
		t.Fatalf("relay got ch %d %q", ch, got)
	}
	sendTo(t, camRTCP, r.rtcp, "sr")
	if ch, got := r.recv(t); ch != mux.UDPChannelRTCP || got != "sr" {
		t.Fatalf("relay got ch %d %q", ch, got)
	}

	// A datagram from another address is dropped: the next one the relay
	// gets is the camera's.
	other, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Skipf("cannot bind 127.0.0.2 for a stranger: %v", err)
	}
	defer other.Close()
	sendTo(t, other, r.rtp, "evil")
	sendTo(t, camRTP, r.rtp, "rtp-2")
	if ch, got := r.recv(t); ch != mux.UDPChannelRTP || got != "rtp-2" {
		t.Fatalf("relay got ch %d %q, want the camera's rtp-2", ch, got)
	}
	if n := liveRelay(t, h.a).dropped.Load(); n != 1 {
		t.Fatalf("dropped %d datagrams, want 1", n)
	}

	// Byte counts: payloads, as they crossed the LAN.
	c := h.a.Counters()
	if c.BytesIn != uint64(len("rtp-1")+len("sr")+len("rtp-2")) || c.BytesOut != uint64(len("rr")) || c.ActiveStreams != 1 || c.TunnelsTotal != 1 {
		t.Fatalf("counters %+v", c)
	}

	// The relay closes the stream: the sockets close, the counts stay.
	r.s.Close()
	waitActive(t, h.a, 0)
	c = h.a.Counters()
	if c.BytesIn != 12 || c.BytesOut != 2 {
		t.Fatalf("counters after close %+v", c)
	}
	for _, p := range []uint16{r.rtp, r.rtcp} {
		l, err := net.ListenUDP("udp4", &net.UDPAddr{Port: int(p)})
		if err != nil {
			t.Fatalf("agent's port %d still bound after close: %v", p, err)
		}
		l.Close()
	}
}

// Without the camera's ports named, the relay's datagrams go where the
// camera's came from; before any, they are dropped.
func TestUDPRelayLatchesAndIsCut(t *testing.T) {
	h := newUDPHarness(t, mux.Target{Host: "127.0.0.1", Port: 554})
	r, err := h.open(t, "127.0.0.1", 554)
	if err != nil {
		t.Fatal(err)
	}
	cam := listenUDP(t, "127.0.0.1")
	r.send(t, mux.UDPChannelRTCP, []byte("lost"))
	u := liveRelay(t, h.a)
	testwait.For(t, 10*time.Second, "1 datagram without a destination", func() bool { return u.noPeer.Load() == 1 })
	sendTo(t, cam, r.rtcp, "sr")
	if _, got := r.recv(t); got != "sr" {
		t.Fatalf("relay got %q", got)
	}
	r.send(t, mux.UDPChannelRTCP, []byte("rr"))
	if got := recvFrom(t, cam, r.rtcp); got != "rr" {
		t.Fatalf("camera got %q, want rr (the datagram sent before it knew the camera is lost)", got)
	}

	// The allowlist drops the camera: its UDP relay ends too.
	if err := h.a.allow.Apply(mux.Allowlist{Version: 2}); err != nil {
		t.Fatal(err)
	}
	h.a.cutDisallowed()
	r.s.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, r.br); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("UDP relay still open after its target left the allowlist")
		}
	}
	waitActive(t, h.a, 0)
}
