package onvif_test

import (
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/nanodems/connector/internal/netns"
	"github.com/nanodems/connector/internal/onvif"
)

// TestWSDDProbeMatch reads the ProbeMatch of an independent WS-Discovery
// implementation: Debian's wsdd, run in a network namespace, answers a
// Probe for its type (wsdp:Device). With ONVIF_CAPTURE=1 the answer is
// written to testdata/wsdd-probematch.xml, the fixture
// TestParseProbeMatchFixtures reads where wsdd cannot run.
func TestWSDDProbeMatch(t *testing.T) {
	netns.Skip(t)
	wsdd, err := exec.LookPath("wsdd")
	if err != nil {
		t.Skip("wsdd is not installed (apt install wsdd)")
	}
	me, peer := netns.New(t), netns.New(t)
	netns.Link(t, me, "me0", []string{"10.97.0.1/24"}, peer, "wsdd0", []string{"10.97.0.2/24"})
	cmd := exec.Command("ip", "netns", "exec", peer.Name, wsdd, "-i", "wsdd0", "-4", "-t", "-U", wsddUUID, "-n", "TESTHOST")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})

	var conn *net.UDPConn
	if err := me.Do(func() error {
		var err error
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 97, 0, 1)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msgID := "uuid:7d0b5e2a-1c3f-4a6b-8e9d-0f1a2b3c4d5e"
	probe := onvif.Probe(msgID, onvif.QName{Prefix: "wsdp", Space: "http://schemas.xmlsoap.org/ws/2006/02/devprof", Local: "Device"})
	dst := &net.UDPAddr{IP: net.IPv4(239, 255, 255, 250), Port: 3702}
	buf := make([]byte, onvif.MaxDatagram+1)
	// wsdd needs a moment to join the group: probe until it answers.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := conn.WriteToUDP(probe, dst); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			n, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				break
			}
			pm, err := onvif.ParseProbeMatches(buf[:n])
			if err != nil {
				continue // wsdd's Hello, or our own Probe looped back
			}
			if pm.RelatesTo != msgID || len(pm.Matches) != 1 {
				t.Fatalf("ProbeMatches %+v, want one match relating to %s", pm, msgID)
			}
			m := pm.Matches[0]
			if m.Address != "urn:uuid:"+wsddUUID || !onvif.HasType(m.Types, "Device") || !onvif.HasType(m.Types, "Computer") {
				t.Errorf("match %+v: want address urn:uuid:%s, types wsdp:Device pub:Computer", m, wsddUUID)
			}
			if os.Getenv("ONVIF_CAPTURE") == "1" {
				if err := os.WriteFile("testdata/wsdd-probematch.xml", buf[:n], 0o644); err != nil {
					t.Fatal(err)
				}
			}
			return
		}
	}
	t.Fatal("wsdd did not answer the Probe within 20 s")
}
