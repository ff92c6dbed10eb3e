package rtsp

import (
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nanodems/connector/internal/testwait"
	"github.com/nanodems/connector/rtsp/rtsptest"
)

// udpViewer is a UDP client by hand: its own RTP and RTCP sockets, whose
// ports it announces in SETUP, counting the RTP packets they receive.
type udpViewer struct {
	rc        *rawConn
	rtp, rtcp *net.UDPConn
	server    [2]int // the gateway's server_port
	got       atomic.Int64
	rtpInfo   string      // the PLAY answer's
	firstPkt  chan []byte // the first RTP packet received
}

func listenLoopUDP(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func playUDP(t *testing.T, g *Gateway, url string) *udpViewer {
	t.Helper()
	v := &udpViewer{rc: dialRaw(t, g.Addr()), rtp: listenLoopUDP(t), rtcp: listenLoopUDP(t), firstPkt: make(chan []byte, 1)}
	resp := v.rc.do("DESCRIBE", url)
	if resp.StatusCode != 200 {
		t.Fatalf("DESCRIBE %d", resp.StatusCode)
	}
	base := strings.TrimSuffix(resp.Header.Get("Content-Base"), "/")
	resp = v.rc.do("SETUP", base+"/trackID=0", "Transport",
		fmt.Sprintf("RTP/AVP;unicast;client_port=%d-%d", port(v.rtp), port(v.rtcp)))
	if resp.StatusCode != 200 {
		t.Fatalf("SETUP %d %s", resp.StatusCode, resp.Header.Get("X-Nanodems-Error"))
	}
	ts, err := ParseTransports(resp.Header.Get("Transport"))
	if err != nil {
		t.Fatal(err)
	}
	a, b, ok := ts[0].Ports("server_port")
	if !ok {
		t.Fatalf("no server_port in %q", resp.Header.Get("Transport"))
	}
	v.server = [2]int{a, b}
	if resp = v.rc.do("PLAY", base, "Session", sessionID(resp.Header.Get("Session"))); resp.StatusCode != 200 {
		t.Fatalf("PLAY %d", resp.StatusCode)
	}
	v.rtpInfo = resp.Header.Get("RTP-Info")
	go func() {
		buf := make([]byte, 2048)
		for {
			n, err := v.rtp.Read(buf)
			if err != nil {
				return
			}
			if v.got.Add(1) == 1 {
				v.firstPkt <- append([]byte(nil), buf[:n]...)
			}
		}
	}()
	return v
}

func (v *udpViewer) first(t *testing.T) []byte {
	t.Helper()
	select {
	case p := <-v.firstPkt:
		return p
	case <-time.After(20 * time.Second):
		t.Fatal("no RTP packet over UDP after PLAY")
		return nil
	}
}

func port(c *net.UDPConn) int { return c.LocalAddr().(*net.UDPAddr).Port }

func (v *udpViewer) waitFor(n int64) error {
	return testwait.Until(20*time.Second, func() error {
		if got := v.got.Load(); got < n {
			return fmt.Errorf("viewer received %d RTP packets, want %d", got, n)
		}
		return nil
	})
}

// pendingDatagram returns the size of the datagram waiting on c (0: none): what
// the kernel holds, asked without reading or waiting.
func pendingDatagram(t *testing.T, c *net.UDPConn) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var ierr error
	rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
	if ierr != nil {
		t.Fatal(ierr)
	}
	return n
}

// TestUDPClientPortsOnly: a UDP viewer's packets go to the ports it
// announced in SETUP and nowhere else. Another socket of the same IP (an
// attacker behind the same NAT or on the same host, or another player's
// stray datagram) sends to the viewer's server ports, RTP and RTCP: the
// viewer keeps receiving, the other socket receives nothing, and the
// gateway counts the datagrams it dropped. Shared (fan-out) and
// per-client (pass-through) sessions, both listeners.
func TestUDPClientPortsOnly(t *testing.T) {
	for _, shared := range []bool{true, false} {
		name := map[bool]string{true: "shared", false: "passthrough"}[shared]
		t.Run(name, func(t *testing.T) {
			modes(t, func(t *testing.T, mode ListenerMode) {
				cam := startCamera(t, rtsptest.Options{})
				b := newFakeBackend()
				b.add(testHandle, fakeDevice{tenant: "t1", addr: cam.Addr})
				g := startGateway(t, b, mode, func(c *Config) { c.NoFanOut = !shared })
				v := playUDP(t, g, gwURL(g, testHandle, "/live", "ok.t1"))
				if err := v.waitFor(20); err != nil {
					t.Fatal(err)
				}

				attacker := listenLoopUDP(t)
				const sent = 10
				for i := range sent {
					to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: v.server[i%2]}
					if _, err := attacker.WriteToUDP([]byte("\x80\xc9\x00\x01\x00\x00\x00\x01"), to); err != nil {
						t.Fatal(err)
					}
				}
				// Every datagram reached the gateway's readers ...
				if err := testwait.Until(10*time.Second, func() error {
					if n := g.Stats().UDPStrangers.Load(); n < sent {
						return fmt.Errorf("gateway saw %d of the %d stray datagrams", n, sent)
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				// ... and the stream stayed where it was: 50 more packets
				// to the viewer, none to the attacker (loopback queues a
				// datagram within its send, so anything sent to the
				// attacker before the viewer's 50th would be there).
				after := v.got.Load() + 50
				if err := v.waitFor(after); err != nil {
					t.Fatalf("the viewer's stream stopped after the stray datagrams: %v", err)
				}
				if n := pendingDatagram(t, attacker); n != 0 {
					t.Fatalf("the attacker's socket received a %d-byte datagram", n)
				}
			})
		})
	}
}
