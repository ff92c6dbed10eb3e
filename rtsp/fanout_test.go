package rtsp

import (
	"encoding/binary"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"

	"github.com/nanodems/connector/rtsp/rtsptest"
)

// rawViewer plays url on a raw connection with interleaved TCP.
func rawViewer(t *testing.T, g *Gateway, url string, rcvbuf int) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", g.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if rcvbuf > 0 {
		c.(*net.TCPConn).SetReadBuffer(rcvbuf)
	}
	t.Cleanup(func() { c.Close() })
	rc := &rawConn{t: t, c: c, rd: NewReader(c, 4096, Limits{})}
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
	return rc
}

// TestFanOutSlowViewers: with one camera session for all, fast viewers
// get every packet; a slow viewer skips ahead and resumes at keyframes;
// a viewer that stops reading is disconnected; neither slows the others.
func TestFanOutSlowViewers(t *testing.T) {
	modes(t, func(t *testing.T, mode ListenerMode) {
		cam := startCamera(t, rtsptest.Options{Manual: true, Audio: true})
		b := newFakeBackend()
		b.add(testHandle, fakeDevice{tenant: "t1", addr: cam.Addr})
		g := startGateway(t, b, mode, func(c *Config) {
			c.ViewerBacklog = 512 << 10
			c.SendBuffer = 64 << 10
			c.DropAfter = time.Second
		})
		url := gwURL(g, testHandle, "/live", "ok.t1")
		var fast []*puller
		for range 3 {
			p, err := pull(t, url, gortsplib.ProtocolTCP, gortsplib.TunnelNone)
			if err != nil {
				t.Fatal(err)
			}
			defer p.c.Close()
			fast = append(fast, p)
		}
		stalled := rawViewer(t, g, url, 4096)
		slow := rawViewer(t, g, url, 4096)
		if cam.SessionsOpened() != 1 {
			t.Fatalf("camera sessions %d, want 1", cam.SessionsOpened())
		}
		// The slow viewer reads 200 KiB/s; the stream is ~2 MB/s.
		var slowSeqs []uint16
		var slowKey []bool
		slowDone := make(chan struct{})
		go func() {
			defer close(slowDone)
			for {
				slow.c.SetReadDeadline(time.Now().Add(3 * time.Second))
				it, err := slow.rd.Next()
				if err != nil {
					return
				}
				if it.Kind != KindFrame || it.Channel != 0 {
					continue
				}
				_, payload, _ := rtpPayload(it.Payload())
				slowSeqs = append(slowSeqs, binary.BigEndian.Uint16(it.Payload()[2:4]))
				slowKey = append(slowKey, startsKeyframe("H264", payload))
				time.Sleep(time.Duration(len(it.Frame)) * time.Second / (200 << 10)) // a slow viewer: 200 KiB/s
			}
		}()

		for cam.Frame()%25 != 0 {
			cam.WriteFrames(1)
		}
		cam.SetBitrate(8 << 20) // ~40 KB frames
		var sent int
		start := time.Now()
		for i := 0; i < 100; i++ { // 4 s of video in ~2 s
			sent += len(cam.WriteFrames(1))
			time.Sleep(20 * time.Millisecond) // pacing: the camera's frame rate
		}
		for i, p := range fast {
			if err := p.waitPackets(int64(sent), 20*time.Second); err != nil {
				t.Fatalf("fast viewer %d: %v", i, err)
			}
		}
		t.Logf("%d packets to 3 fast viewers in %v; skips %d, drops %d", sent, time.Since(start), g.Stats().Skips.Load(), g.Stats().Drops.Load())
		if g.Stats().Skips.Load() == 0 {
			t.Fatal("no viewer was ever skipped ahead")
		}
		// The stalled viewer was dropped: reading now finds the end.
		stalled.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 64<<10)
		for {
			if _, err := stalled.c.Read(buf); err != nil {
				if isTimeout(err) {
					t.Fatal("the stalled viewer is still connected")
				}
				break
			}
		}
		if g.Stats().Drops.Load() == 0 {
			t.Fatal("no drop counted")
		}
		slow.c.Close()
		<-slowDone
		gaps := 0
		for i := 1; i < len(slowSeqs); i++ {
			if slowSeqs[i] != slowSeqs[i-1]+1 {
				gaps++
				if !slowKey[i] {
					t.Fatalf("slow viewer resumed at packet %d (seq %d) after a gap, not at a keyframe", i, slowSeqs[i])
				}
			}
		}
		if gaps == 0 && len(slowSeqs) >= sent {
			t.Fatalf("the slow viewer got all %d packets: it was never skipped", len(slowSeqs))
		}
		if len(slowSeqs) == 0 || !slowKey[0] {
			t.Fatal("the slow viewer did not start at a keyframe")
		}
	})
}

// TestFanOutEveryPacket: many viewers, one camera session, every viewer
// gets every packet in order, video and audio.
func TestFanOutEveryPacket(t *testing.T) {
	modes(t, func(t *testing.T, mode ListenerMode) {
		cam := startCamera(t, rtsptest.Options{Manual: true, Audio: true, User: "u", Pass: "p"})
		b := newFakeBackend()
		b.add(testHandle, fakeDevice{tenant: "t1", addr: cam.Addr, user: "u", pass: "p"})
		g := startGateway(t, b, mode)
		url := gwURL(g, testHandle, "/live", "ok.t1")
		const n = 20
		ps := make([]*puller, n)
		var wg sync.WaitGroup
		for i := range ps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				proto := gortsplib.ProtocolTCP
				if i%2 == 1 {
					proto = gortsplib.ProtocolUDP
				}
				p, err := pull(t, url, proto, gortsplib.TunnelNone)
				if err != nil {
					t.Error(err)
					return
				}
				ps[i] = p
			}()
		}
		wg.Wait()
		for _, p := range ps {
			if p == nil {
				t.FailNow()
			}
			defer p.c.Close()
		}
		if cam.SessionsOpened() != 1 || g.Stats().Sources.Load() != 1 || g.Stats().Viewers.Load() != n {
			t.Fatalf("camera sessions %d, sources %d, viewers %d", cam.SessionsOpened(), g.Stats().Sources.Load(), g.Stats().Viewers.Load())
		}
		for cam.Frame()%25 != 0 {
			cam.WriteFrames(1)
		}
		var sent []uint16
		for range 50 {
			for _, p := range cam.WriteFrames(1) {
				sent = append(sent, p.SequenceNumber)
			}
			time.Sleep(5 * time.Millisecond) // pacing: the camera's frame rate
		}
		for i, p := range ps {
			for j, want := range sent {
				select {
				case got := <-p.pkts:
					if got.SequenceNumber != want {
						t.Fatalf("viewer %d packet %d: seq %d, want %d", i, j, got.SequenceNumber, want)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("viewer %d got %d of %d packets", i, j, len(sent))
				}
			}
		}
		for _, p := range ps {
			p.c.Close()
		}
		if err := cam.WaitSessions(0, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if g.Stats().Sources.Load() != 0 || g.Stats().Viewers.Load() != 0 {
			t.Fatalf("sources %d viewers %d after all left", g.Stats().Sources.Load(), g.Stats().Viewers.Load())
		}
	})
}

// TestNotSharedWithoutLogin: a camera that wants the client's own login
// (none stored) is served per client, and its challenge reaches each.
func TestNotSharedWithoutLogin(t *testing.T) {
	cam := startCamera(t, rtsptest.Options{User: "u", Pass: "p", BasicOnly: true})
	b := newFakeBackend()
	b.add(testHandle, fakeDevice{tenant: "t1", addr: cam.Addr})
	g := startGateway(t, b, GNet)
	url := strings.Replace(gwURL(g, testHandle, "/live", "ok.t1"), "rtsp://", "rtsp://u:p@", 1)
	for range 2 {
		p, err := pull(t, url, gortsplib.ProtocolTCP, gortsplib.TunnelNone)
		if err != nil {
			t.Fatal(err)
		}
		defer p.c.Close()
		if err := p.waitPackets(5, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if cam.Sessions() != 2 || g.Stats().Sources.Load() != 0 {
		t.Fatalf("camera sessions %d, sources %d: want one camera session per client", cam.Sessions(), g.Stats().Sources.Load())
	}
}
