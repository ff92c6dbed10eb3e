package rtsp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nanodems/connector/internal/testwait"
	"github.com/nanodems/connector/rtsp/rtsptest"
)

// rtpNumbers are the fields of an RTP packet a player orders by.
type rtpNumbers struct {
	seq  uint16
	ts   uint32
	ssrc uint32
	at   time.Time // when the viewer read it
}

// readRTP reads a raw viewer's frames until cond holds for the numbers
// of the video packets read so far (channel 0); other frames are skipped.
func readRTP(r *rawConn, timeout time.Duration, got []rtpNumbers, cond func([]rtpNumbers) bool) ([]rtpNumbers, error) {
	r.c.SetReadDeadline(time.Now().Add(timeout))
	defer r.c.SetReadDeadline(time.Time{})
	for !cond(got) {
		it, err := r.rd.Next()
		if err != nil {
			return got, err
		}
		if it.Kind != KindFrame || it.Channel != 0 {
			continue
		}
		b := it.Payload()
		if len(b) < 12 {
			continue
		}
		got = append(got, rtpNumbers{binary.BigEndian.Uint16(b[2:4]), binary.BigEndian.Uint32(b[4:8]), binary.BigEndian.Uint32(b[8:12]), time.Now()})
	}
	return got, nil
}

// TestResumeAfterCameraRestart: the camera closes, its agent is offline
// for a second (the backend answers 503), and a new camera starts on the
// same port with its numbering from zero. The viewers' sessions stay
// open; they resume with no gap in sequence numbers, the same SSRC, and
// a timestamp advance of the wall-clock gap.
func TestResumeAfterCameraRestart(t *testing.T) {
	modes(t, func(t *testing.T, mode ListenerMode) {
		b := newFakeBackend()
		cam := startCamera(t, rtsptest.Options{})
		b.add(testHandle, fakeDevice{tenant: "t1", addr: cam.Addr})
		g := startGateway(t, b, mode)
		url := gwURL(g, testHandle, "/live", "ok.t1")
		// Each viewer reads on its own goroutine, so a packet's reading
		// time is its arrival, for the gap each one sees.
		viewers := []*rawConn{rawViewer(t, g, url, 0), rawViewer(t, g, url, 0)}
		type result struct {
			got []rtpNumbers
			err error
		}
		var mu sync.Mutex
		counts := make([]int, len(viewers))
		restarted := make(chan struct{})
		results := make(chan result, len(viewers))
		for i, v := range viewers {
			go func() {
				after := -1
				got, err := readRTP(v, 60*time.Second, nil, func(n []rtpNumbers) bool {
					mu.Lock()
					counts[i] = len(n)
					mu.Unlock()
					select {
					case <-restarted:
						if after < 0 {
							after = len(n)
						}
						return len(n) >= after+50
					default:
						return false
					}
				})
				results <- result{got, err}
			}()
		}
		testwait.Until(10*time.Second, func() error {
			mu.Lock()
			defer mu.Unlock()
			for i, n := range counts {
				if n < 50 {
					return fmt.Errorf("viewer %d: %d packets", i, n)
				}
			}
			return nil
		})

		cam.Close()
		b.add(testHandle, fakeDevice{tenant: "t1", addr: cam.Addr, offline: true})
		time.Sleep(time.Second)
		cam2, err := rtsptest.Start(rtsptest.Options{Addr: cam.Addr})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cam2.Close)
		b.add(testHandle, fakeDevice{tenant: "t1", addr: cam.Addr})
		close(restarted)

		for i := range viewers {
			r := <-results
			all, err := r.got, r.err
			if err != nil {
				t.Fatalf("a viewer after the restart: %v (%d packets)", err, len(all))
			}
			gapAt := 0
			for j := 1; j < len(all); j++ {
				a, c := all[j-1], all[j]
				if c.seq != a.seq+1 {
					t.Fatalf("viewer %d: seq %d after %d", i, c.seq, a.seq)
				}
				if c.ssrc != a.ssrc {
					t.Fatalf("viewer %d: SSRC %08x after %08x", i, c.ssrc, a.ssrc)
				}
				if gapAt == 0 || c.at.Sub(a.at) > all[gapAt].at.Sub(all[gapAt-1].at) {
					gapAt = j // the longest wait between two packets: the restart
				}
			}
			a, c := all[gapAt-1], all[gapAt]
			wall := c.at.Sub(a.at)
			if wall < time.Second {
				t.Fatalf("viewer %d: no gap of the camera's second offline (longest %v)", i, wall)
			}
			adv := time.Duration(c.ts-a.ts) * time.Second / 90000
			// The advance is the gap as the gateway saw it, the viewer's
			// own reading differs by its read scheduling only.
			if adv < wall/3 || adv > 3*wall {
				t.Fatalf("viewer %d: timestamp advanced %v over a gap of %v", i, adv, wall)
			}
			t.Logf("viewer %d: gap %v, timestamp advance %v, seq %d→%d", i, wall.Round(time.Millisecond), adv.Round(time.Millisecond), a.seq, c.seq)
		}
		if got := g.Stats().Resumes.Load(); got != 1 {
			t.Fatalf("Resumes = %d, want 1", got)
		}
		if got := g.Stats().Sources.Load(); got != 1 {
			t.Fatalf("Sources = %d, want 1", got)
		}
	})
}

// TestResumeGivesUpWithBye: when the camera stays away past ResumeFor,
// each viewer gets an RTCP BYE of the SSRC it saw, then a close; the
// source is gone and the camera's next viewer starts afresh.
func TestResumeGivesUpWithBye(t *testing.T) {
	modes(t, func(t *testing.T, mode ListenerMode) {
		b := newFakeBackend()
		cam := startCamera(t, rtsptest.Options{})
		b.add(testHandle, fakeDevice{tenant: "t1", addr: cam.Addr})
		g := startGateway(t, b, mode, func(c *Config) { c.ResumeFor = 2 * time.Second })
		v := rawViewer(t, g, gwURL(g, testHandle, "/live", "ok.t1"), 0)
		got, err := readRTP(v, 10*time.Second, nil, func(n []rtpNumbers) bool { return len(n) >= 10 })
		if err != nil {
			t.Fatal(err)
		}
		ssrc := got[0].ssrc

		b.add(testHandle, fakeDevice{tenant: "t1", addr: cam.Addr, offline: true})
		lost := time.Now()
		cam.Close()
		if !byeThenClose(t, v, ssrc) {
			t.Fatal("closed without an RTCP BYE of the viewer's SSRC")
		}
		if held := time.Since(lost); held < 2*time.Second {
			t.Fatalf("viewer ended %v after the loss, before ResumeFor (2s)", held)
		}
		if got := g.Stats().GiveUps.Load(); got != 1 {
			t.Fatalf("GiveUps = %d, want 1", got)
		}
		testwait.Until(10*time.Second, func() error {
			if n := g.Stats().Sources.Load(); n != 0 {
				return errors.New("a source is left")
			}
			return nil
		})
	})
}

// TestResumeEndsForARefusedHandle: when the backend refuses the handle
// itself (deleted, revoked: 404), the viewers are not held for
// ResumeFor (a minute here) but get their BYE and close at once.
func TestResumeEndsForARefusedHandle(t *testing.T) {
	modes(t, func(t *testing.T, mode ListenerMode) {
		b := newFakeBackend()
		cam := startCamera(t, rtsptest.Options{})
		b.add(testHandle, fakeDevice{tenant: "t1", addr: cam.Addr})
		g := startGateway(t, b, mode, func(c *Config) { c.ResumeFor = time.Minute })
		v := rawViewer(t, g, gwURL(g, testHandle, "/live", "ok.t1"), 0)
		got, err := readRTP(v, 10*time.Second, nil, func(n []rtpNumbers) bool { return len(n) >= 10 })
		if err != nil {
			t.Fatal(err)
		}
		b.mu.Lock()
		delete(b.devices, testHandle)
		b.mu.Unlock()
		cam.Close()
		if !byeThenClose(t, v, got[0].ssrc) {
			t.Fatal("closed without an RTCP BYE of the viewer's SSRC")
		}
		if got := g.Stats().GiveUps.Load(); got != 1 {
			t.Fatalf("GiveUps = %d, want 1", got)
		}
	})
}

// byeThenClose reads a viewer to its end, within 30 s, and reports
// whether an RTCP BYE of ssrc came on channel 1 before it.
func byeThenClose(t *testing.T, v *rawConn, ssrc uint32) bool {
	t.Helper()
	v.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	bye := false
	for {
		it, err := v.rd.Next()
		if err != nil {
			if isTimeout(err) || !errors.Is(err, io.EOF) && !isReset(err) {
				t.Fatalf("after the BYE: %v, want the connection closed", err)
			}
			break
		}
		if it.Kind == KindFrame && it.Channel == 1 {
			p := it.Payload()
			if len(p) == 16 && p[9] == rtcpBYE && binary.BigEndian.Uint32(p[12:16]) == ssrc {
				bye = true
			}
		}
	}
	return bye
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op)
}
