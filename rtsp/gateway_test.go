package rtsp

import (
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"

	"github.com/nanodems/connector/rtsp/rtsptest"
)

func TestPassThroughTCPWithStoredDigest(t *testing.T) {
	modes(t, func(t *testing.T, mode ListenerMode) {
		cam := startCamera(t, rtsptest.Options{User: "admin", Pass: "s3cret"})
		b := newFakeBackend()
		b.add(testHandle, fakeDevice{tenant: "t1", addr: cam.Addr, user: "admin", pass: "s3cret"})
		g := startGateway(t, b, mode, func(c *Config) { c.NoFanOut = true })
		p, err := pull(t, gwURL(g, testHandle, "/Streaming/Channels/101", "ok.t1"), gortsplib.ProtocolTCP, gortsplib.TunnelNone)
		if err != nil {
			t.Fatal(err)
		}
		defer p.c.Close()
		if err := p.waitPackets(50, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if got := cam.Setups(); len(got) != 1 || got[0] != "TCP" {
			t.Fatalf("camera setups %v, want [TCP]", got)
		}
		for _, r := range cam.Requests() {
			if strings.Contains(r.URL, "nd_grant") || strings.Contains(r.URL, testHandle) {
				t.Fatalf("camera saw relay URL %s %s", r.Method, r.URL)
			}
		}
		p.c.Close()
		if err := cam.WaitSessions(0, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	})
}

// TestTransportMatrix plays through the gateway with three clients at
// once, shared and per client, over TCP, UDP and the HTTP tunnel, on both
// listeners: the camera sees interleaved TCP only, one session when
// shared and one per client otherwise, and every session ends with its
// client.
func TestTransportMatrix(t *testing.T) {
	for _, fan := range []bool{false, true} {
		for _, proto := range []gortsplib.Protocol{gortsplib.ProtocolTCP, gortsplib.ProtocolUDP} {
			for _, tun := range []gortsplib.Tunnel{gortsplib.TunnelNone, gortsplib.TunnelHTTP} {
				if tun == gortsplib.TunnelHTTP && proto == gortsplib.ProtocolUDP {
					continue
				}
				name := map[bool]string{false: "pass", true: "fan"}[fan] + "/" + map[gortsplib.Protocol]string{gortsplib.ProtocolTCP: "tcp", gortsplib.ProtocolUDP: "udp"}[proto] + map[gortsplib.Tunnel]string{gortsplib.TunnelNone: "", gortsplib.TunnelHTTP: "/http"}[tun]
				t.Run(name, func(t *testing.T) {
					modes(t, func(t *testing.T, mode ListenerMode) {
						cam := startCamera(t, rtsptest.Options{User: "admin", Pass: "s3cret", Audio: true})
						b := newFakeBackend()
						b.add(testHandle, fakeDevice{tenant: "t1", addr: cam.Addr, user: "admin", pass: "s3cret"})
						g := startGateway(t, b, mode, func(c *Config) { c.NoFanOut = !fan })
						var ps []*puller
						for range 3 {
							p, err := pull(t, gwURL(g, testHandle, "/cam/realmonitor?channel=1&subtype=0", "ok.t1"), proto, tun)
							if err != nil {
								t.Fatal(err)
							}
							defer p.c.Close()
							ps = append(ps, p)
						}
						for _, p := range ps {
							if err := p.waitPackets(30, 10*time.Second); err != nil {
								t.Fatal(err)
							}
						}
						want := int64(3)
						if fan {
							want = 1
						}
						if n := cam.Sessions(); n != want {
							t.Fatalf("camera sessions %d, want %d", n, want)
						}
						for _, s := range cam.Setups() {
							if s != "TCP" {
								t.Fatalf("camera setups %v", cam.Setups())
							}
						}
						for _, p := range ps {
							p.c.Close()
						}
						if err := cam.WaitSessions(0, 5*time.Second); err != nil {
							t.Fatal(err)
						}
					})
				})
			}
		}
	}
}
