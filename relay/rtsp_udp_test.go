package relay_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"

	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/testwait"
	"github.com/nanodems/connector/rtsp"
	"github.com/nanodems/connector/rtsp/rtsptest"
)

// TestRTSPUDPOnlyCamera: a camera that answers 461 to interleaved TCP is
// served by the agent taking its UDP on the LAN and carrying it over the
// tunnel (docs/rtsp.md, "Cameras that only do UDP"). Pulled over TCP and
// UDP, on the client's own camera session (its own Basic login) and on a
// shared one (stored login): every packet arrives in order, the camera saw
// one refused TCP SETUP and then only UDP, the client's receiver reports
// reach the camera over UDP (own session, UDP client), and closing the client tears
// the camera session down and closes the agent's UDP sockets.
func TestRTSPUDPOnlyCamera(t *testing.T) {
	t.Parallel()
	d := startDemo(t)
	// One after another: the agent's count of live tunnels is the
	// evidence that the UDP relays closed.
	for _, mode := range []string{"own", "shared"} {
		for _, proto := range []gortsplib.Protocol{gortsplib.ProtocolTCP, gortsplib.ProtocolUDP} {
			name := mode + "/" + map[gortsplib.Protocol]string{gortsplib.ProtocolTCP: "tcp", gortsplib.ProtocolUDP: "udp"}[proto]
			t.Run(name, func(t *testing.T) {
				shared := mode == "shared"
				cam, h := rtspCamera(t, d, rtsptest.Options{User: rtspUser, Pass: rtspPass, BasicOnly: !shared, UDPOnly: true, Audio: true}, shared)
				u := mintRTSP(t, d, demo.Bearer(d.Info.Token), h, "/udp-only", 0)
				if !shared {
					u = strings.Replace(u, "rtsp://", "rtsp://"+rtspUser+":"+rtspPass+"@", 1)
				}
				p := rtspPull(t, u, proto, gortsplib.TunnelNone)
				checkSequence(t, p, 60)

				// The camera refused TCP once (the gateway remembers it for
				// the second track) and set both tracks up over UDP.
				if got := cam.Setups(); len(got) != 2 || got[0] != "UDP" || got[1] != "UDP" {
					t.Fatalf("camera setups %v, want [UDP UDP]", got)
				}
				if n := cam.RefusedTCP(); n != 1 {
					t.Fatalf("camera refused %d TCP SETUPs, want 1 (then UDP straight away)", n)
				}
				var ports []string
				for _, r := range cam.Requests() {
					if r.Method == "SETUP" && strings.Contains(r.Transport, "client_port=") {
						if strings.Contains(r.Transport, "TCP") || strings.Contains(r.Transport, "interleaved") {
							t.Fatalf("UDP SETUP with transport %q", r.Transport)
						}
						ports = append(ports, r.Transport)
					}
				}
				if len(ports) != 2 {
					t.Fatalf("camera saw UDP SETUPs %q, want 2", ports)
				}
				if tr := p.c.Transport(); tr == nil || tr.Session == nil || tr.Session.Protocol != proto {
					t.Fatalf("client transport %+v, want %v", tr, proto)
				}
				if !shared && proto == gortsplib.ProtocolUDP {
					// gortsplib sends receiver reports over UDP only, every
					// 5 s; a shared session's viewers keep theirs (the
					// camera has one client, the gateway).
					testwait.For(t, 30*time.Second, "client RTCP at the camera", func() bool { return cam.RTCPReceived() > 0 })
				}

				p.c.Close()
				must(t, cam.WaitSessions(0, 10*time.Second))
				if !strings.Contains(cam.Methods(), "TEARDOWN") {
					t.Fatalf("camera got no TEARDOWN: %s", cam.Methods())
				}
				testwait.For(t, 10*time.Second, "the agent's tunnels to close", func() bool { return d.Agent.Counters().ActiveStreams == 0 })
				for _, tr := range ports {
					rtp, rtcp := clientPorts(t, tr)
					for _, port := range []int{rtp, rtcp} {
						testwait.For(t, 10*time.Second, fmt.Sprintf("agent's UDP port %d to be free", port), func() bool {
							c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: port})
							if err != nil {
								return false
							}
							c.Close()
							return true
						})
					}
				}
			})
		}
	}
}

// checkSequence waits for n video packets and checks that they came one
// after another, no sequence number missing or out of order.
func checkSequence(t *testing.T, p *rtspPuller, n int) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	var prev uint16
	for i := range n {
		select {
		case s := <-p.seqs:
			if i > 0 && s != prev+1 {
				t.Fatalf("packet %d: seq %d after %d", i, s, prev)
			}
			prev = s
		case <-deadline:
			t.Fatalf("got %d of %d video packets; %s", i, n, p.why())
		}
	}
}

// clientPorts reads client_port of a Transport value.
func clientPorts(t *testing.T, v string) (int, int) {
	t.Helper()
	ts, err := rtsp.ParseTransports(v)
	must(t, err)
	a, b, ok := ts[0].Ports("client_port")
	if !ok {
		t.Fatalf("no client_port in %q", v)
	}
	return a, b
}
