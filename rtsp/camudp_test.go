package rtsp

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"

	"github.com/nanodems/connector/internal/testwait"
	"github.com/nanodems/connector/rtsp/rtsptest"
)

// TestUDPOnlyCamera: a camera that answers 461 to interleaved TCP is set
// up over UDP to a relay next to it, on the client's own camera
// connection and on a shared one, for TCP and UDP clients; its packets
// arrive in order; its UDP relays close with the camera connection
// (goleak checks their readers).
func TestUDPOnlyCamera(t *testing.T) {
	modes(t, func(t *testing.T, mode ListenerMode) {
		for _, shared := range []bool{false, true} {
			for _, proto := range []gortsplib.Protocol{gortsplib.ProtocolTCP, gortsplib.ProtocolUDP} {
				t.Run(fmt.Sprintf("shared=%v/%v", shared, proto), func(t *testing.T) {
					o := rtsptest.Options{UDPOnly: true, Audio: true, User: "admin", Pass: "pw", BasicOnly: true}
					cam := startCamera(t, o)
					b := newFakeBackend()
					d := fakeDevice{tenant: "t1", addr: cam.Addr}
					if shared {
						d.user, d.pass = o.User, o.Pass
					}
					b.add(testHandle, d)
					g := startGateway(t, b, mode)
					url := gwURL(g, testHandle, "/live", "ok.t1")
					if !shared {
						url = strings.Replace(url, "rtsp://", "rtsp://admin:pw@", 1)
					}
					p, err := pull(t, url, proto, gortsplib.TunnelNone)
					if err != nil {
						t.Fatal(err)
					}
					defer p.c.Close()
					var prev uint16
					for i := range 30 {
						select {
						case pkt := <-p.pkts:
							if i > 0 && pkt.SequenceNumber != prev+1 {
								t.Fatalf("packet %d: seq %d after %d", i, pkt.SequenceNumber, prev)
							}
							prev = pkt.SequenceNumber
						case <-time.After(20 * time.Second):
							t.Fatalf("got %d packets", i)
						}
					}
					if got := cam.Setups(); len(got) != 2 || got[0] != "UDP" || got[1] != "UDP" {
						t.Fatalf("camera setups %v, want [UDP UDP]", got)
					}
					if cam.RefusedTCP() != 1 || b.udpDials.Load() != 2 {
						t.Fatalf("camera refused %d TCP SETUPs, %d UDP relays; want 1 and 2", cam.RefusedTCP(), b.udpDials.Load())
					}
					p.c.Close()
					if err := cam.WaitSessions(0, 10*time.Second); err != nil {
						t.Fatal(err)
					}
					if err := testwait.Until(10*time.Second, func() error {
						if n := g.Stats().CameraSessions.Load(); n != 0 {
							return fmt.Errorf("%d camera connections open", n)
						}
						return nil
					}); err != nil {
						t.Fatal(err)
					}
				})
			}
		}
	})
}

// TestUDPOnlyCameraWithoutUDPBackend: a backend that cannot relay UDP
// leaves the camera's 461 to the client.
func TestUDPOnlyCameraWithoutUDPBackend(t *testing.T) {
	cam := startCamera(t, rtsptest.Options{UDPOnly: true})
	b := newFakeBackend()
	b.add(testHandle, fakeDevice{tenant: "t1", addr: cam.Addr})
	g := startGateway(t, tcpOnlyBackend{b}, Goroutines)
	rc := dialRaw(t, g.Addr())
	r := rc.do("DESCRIBE", gwURL(g, testHandle, "/live", "ok.t1"))
	if r.StatusCode != 200 {
		t.Fatalf("DESCRIBE %d", r.StatusCode)
	}
	base := strings.TrimSuffix(r.Header.Get("Content-Base"), "/")
	if r := rc.do("SETUP", base+"/trackID=0", "Transport", "RTP/AVP/TCP;unicast;interleaved=0-1"); r.StatusCode != 461 {
		t.Fatalf("SETUP %d, want the camera's 461", r.StatusCode)
	}
}

// TestUDPOnlyCameraRTCP: a TCP client's RTCP on a converted channel goes
// to the camera as a datagram, never as a '$' frame on its connection.
func TestUDPOnlyCameraRTCP(t *testing.T) {
	cam := startCamera(t, rtsptest.Options{UDPOnly: true})
	b := newFakeBackend()
	b.add(testHandle, fakeDevice{tenant: "t1", addr: cam.Addr})
	g := startGateway(t, b, GNet, func(c *Config) { c.NoFanOut = true })
	rc := dialRaw(t, g.Addr())
	r := rc.do("DESCRIBE", gwURL(g, testHandle, "/live", "ok.t1"))
	base := strings.TrimSuffix(r.Header.Get("Content-Base"), "/")
	r = rc.do("SETUP", base+"/trackID=0", "Transport", "RTP/AVP/TCP;unicast;interleaved=4-5")
	if r.StatusCode != 200 {
		t.Fatalf("SETUP %d", r.StatusCode)
	}
	tr, err := ParseTransports(r.Header.Get("Transport"))
	if err != nil || !tr[0].IsTCP() {
		t.Fatalf("client's Transport %q, want interleaved TCP", r.Header.Get("Transport"))
	}
	if a, _, ok := tr[0].Ports("interleaved"); !ok || a != 4 {
		t.Fatalf("client's Transport %q, want interleaved=4-5", r.Header.Get("Transport"))
	}
	if _, ok := tr[0].Get("ssrc"); !ok {
		t.Fatalf("client's Transport %q lost the camera's ssrc", r.Header.Get("Transport"))
	}
	sess := sessionID(r.Header.Get("Session"))
	if r := rc.do("PLAY", base, "Session", sess); r.StatusCode != 200 {
		t.Fatalf("PLAY %d", r.StatusCode)
	}
	if _, err := rc.frames(4, 5, 20*time.Second); err != nil {
		t.Fatalf("frames on the client's channel: %v", err)
	}
	// An empty receiver report (RFC 3550 §6.4.2), on the RTCP channel.
	rr := []byte{0x80, 201, 0, 1, 0, 0, 0, 1}
	frame := append(AppendFrameHeader(nil, 5, len(rr)), rr...)
	// Sent again on every poll: the camera's UDP port may not be known yet.
	if err := testwait.Until(20*time.Second, func() error {
		if cam.RTCPReceived() != 0 {
			return nil
		}
		if _, err := rc.c.Write(frame); err != nil {
			return fmt.Errorf("%w (writing the report)", err)
		}
		return errors.New("the camera got no RTCP over UDP")
	}); err != nil {
		t.Fatal(err)
	}
	// The camera connection is still fine: a '$' frame there would have
	// been garbage to a camera with no interleaved session.
	if r := rc.do("GET_PARAMETER", base, "Session", sess); r.StatusCode != 200 {
		t.Fatalf("GET_PARAMETER %d", r.StatusCode)
	}
	if r := rc.do("TEARDOWN", base, "Session", sess); r.StatusCode != 200 {
		t.Fatalf("TEARDOWN %d", r.StatusCode)
	}
	if err := cam.WaitSessions(0, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}
