package rtsp

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nanodems/connector/rtsp/rtsptest"
)

// rtpInfoSeq reads the seq= of the RTP-Info entry whose url ends with
// track (e.g. "trackID=0").
func rtpInfoSeq(t *testing.T, v, track string) (uint16, bool) {
	t.Helper()
	for _, part := range splitRTPInfo(v) {
		fields := strings.Split(part, ";")
		if !strings.HasSuffix(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(fields[0]), "url="), "/"), track) {
			continue
		}
		for _, f := range fields[1:] {
			if s, ok := strings.CutPrefix(strings.TrimSpace(f), "seq="); ok {
				n, err := strconv.ParseUint(s, 10, 16)
				if err != nil {
					t.Fatalf("RTP-Info %q: %v", v, err)
				}
				return uint16(n), true
			}
		}
	}
	return 0, false
}

// playTCP plays track 0 of url over interleaved TCP and returns the PLAY
// answer's RTP-Info and the first RTP packet received.
func playTCP(t *testing.T, g *Gateway, url string) (rtpInfo string, first []byte) {
	t.Helper()
	rc := dialRaw(t, g.Addr())
	resp := rc.do("DESCRIBE", url)
	if resp.StatusCode != 200 {
		t.Fatalf("DESCRIBE %d", resp.StatusCode)
	}
	base := strings.TrimSuffix(resp.Header.Get("Content-Base"), "/")
	resp = rc.do("SETUP", base+"/trackID=0", "Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")
	if resp.StatusCode != 200 {
		t.Fatalf("SETUP %d", resp.StatusCode)
	}
	if resp = rc.do("PLAY", base, "Session", sessionID(resp.Header.Get("Session"))); resp.StatusCode != 200 {
		t.Fatalf("PLAY %d", resp.StatusCode)
	}
	fs, err := rc.frames(0, 1, 20*time.Second)
	if err != nil {
		t.Fatalf("no RTP packet after PLAY: %v", err)
	}
	return resp.Header.Get("RTP-Info"), fs[0]
}

func seqOf(pkt []byte) uint16 { return binary.BigEndian.Uint16(pkt[2:4]) }

// TestFirstViewerRTPInfo: the first viewer of a shared camera session is
// answered with the camera's RTP-Info, and the first packet it gets is
// the one that RTP-Info names (the camera mid-GOP when it plays: the
// viewer does not wait for a keyframe). A later viewer joins at a
// keyframe and gets no RTP-Info, so nothing it is told is wrong either.
// Over TCP and UDP, from a camera that streams over TCP and from one
// that only does UDP (whose packets may overtake the PLAY answer).
func TestFirstViewerRTPInfo(t *testing.T) {
	for _, udpCam := range []bool{false, true} {
		for _, udpClient := range []bool{false, true} {
			name := fmt.Sprintf("camera-%s/client-%s", map[bool]string{false: "tcp", true: "udp"}[udpCam], map[bool]string{false: "tcp", true: "udp"}[udpClient])
			t.Run(name, func(t *testing.T) {
				modes(t, func(t *testing.T, mode ListenerMode) {
					cam := startCamera(t, rtsptest.Options{UDPOnly: udpCam, Audio: true})
					// Mid-GOP, so that waiting for a keyframe would show.
					for cam.Frame()%len(rtsptest.AccessUnits) < 3 {
						time.Sleep(10 * time.Millisecond)
					}
					b := newFakeBackend()
					b.add(testHandle, fakeDevice{tenant: "t1", addr: cam.Addr})
					g := startGateway(t, b, mode)
					url := gwURL(g, testHandle, "/live", "ok.t1")

					var info string
					var firstSeq uint16
					if udpClient {
						v := playUDP(t, g, url)
						info = v.rtpInfo
						pkt := v.first(t)
						firstSeq = seqOf(pkt)
					} else {
						var pkt []byte
						info, pkt = playTCP(t, g, url)
						firstSeq = seqOf(pkt)
					}
					seq, ok := rtpInfoSeq(t, info, "trackID=0")
					if !ok {
						t.Fatalf("first viewer: no seq for the video track in RTP-Info %q", info)
					}
					if seq != firstSeq {
						t.Fatalf("first viewer: RTP-Info seq=%d, first packet delivered seq=%d", seq, firstSeq)
					}
					t.Logf("first viewer: RTP-Info seq=%d = first packet's", seq)

					info2, pkt2 := playTCP(t, g, url)
					if info2 != "" {
						t.Fatalf("later viewer: RTP-Info %q for a stream it joins at a keyframe", info2)
					}
					if _, payload, ok := rtpPayload(pkt2); !ok || !startsKeyframe("H264/90000", payload) {
						t.Fatalf("later viewer: first packet (seq %d) does not start a keyframe", seqOf(pkt2))
					}
				})
			})
		}
	}
}
