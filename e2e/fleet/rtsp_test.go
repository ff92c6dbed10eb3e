package fleet

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"

	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/testwait"
	"github.com/nanodems/connector/rtsp/rtsptest"
)

// checkRTSPBridged plays a gortsplib camera at site's agent from relay
// via, which does not hold that agent: a grant URL minted through via's
// API, played over TCP and over UDP by a gortsplib client, until 50 video
// packets have arrived each time.
func checkRTSPBridged(t *testing.T, via *relayProc, in installation, site string) {
	ctx := context.Background()
	handle := addCamera(t, via, in, site, "RTSP camera")
	before := via.bridgeStats(t)
	for _, proto := range []gortsplib.Protocol{gortsplib.ProtocolTCP, gortsplib.ProtocolUDP} {
		var out struct {
			URL string `json:"url"`
		}
		must(t, via.apiClient().Do(ctx, "POST", "/api/handles/"+handle+"/rtsp-url", map[string]any{"path": "/fleet"}, &out, demo.Bearer(in.token)))
		var n atomic.Int64
		// The agent gets the new device from its relay through the change
		// feed: a play that comes first is refused, so it is retried.
		var c *gortsplib.Client
		testwait.For(t, 30*time.Second, "RTSP play through "+via.node, func() bool {
			var err error
			c, err = play(out.URL, proto, func() { n.Add(1) })
			return err == nil
		})
		testwait.For(t, 30*time.Second, "50 video packets", func() bool { return n.Load() >= 50 })
		c.Close()
		t.Logf("RTSP over %v through %s (bridged): %d video packets from the camera at the other relay's agent", proto, via.node, n.Load())
	}
	if after := via.bridgeStats(t); after.Opens < before.Opens+2 {
		t.Fatalf("%s bridge opens %d → %d: the RTSP sessions did not cross the bridge", via.node, before.Opens, after.Opens)
	}
}

// addCamera starts a gortsplib camera for the test and adds it to site
// through relay via's API; it returns the handle of its RTSP port.
func addCamera(t *testing.T, via *relayProc, in installation, site, label string) string {
	cam, err := rtsptest.Start(rtsptest.Options{})
	must(t, err)
	t.Cleanup(cam.Close)
	var dev struct {
		Handles map[string]string `json:"handles"`
	}
	must(t, via.apiClient().Do(context.Background(), "POST", "/api/sites/"+site+"/devices", map[string]any{"host": "127.0.0.1", "ports": []int{cam.Port}, "label": label}, &dev, demo.Bearer(in.token)))
	return dev.Handles[strconv.Itoa(cam.Port)]
}

// play starts playing u with gortsplib over proto and calls packet for
// each video RTP packet.
func play(u string, proto gortsplib.Protocol, packet func()) (*gortsplib.Client, error) {
	pu, err := base.ParseURL(u)
	if err != nil {
		return nil, err
	}
	c := &gortsplib.Client{Scheme: pu.Scheme, Host: pu.Host, Protocol: &proto, ReadTimeout: 10 * time.Second}
	if err := c.Start(); err != nil {
		return nil, err
	}
	desc, _, err := c.Describe(pu)
	if err == nil {
		err = c.SetupAll(desc.BaseURL, desc.Medias)
	}
	var vf *format.H264
	if err == nil && desc.FindFormat(&vf) == nil {
		err = fmt.Errorf("%s: no H.264 track", u)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	vm := desc.FindFormat(&vf)
	c.OnPacketRTPAny(func(m *description.Media, _ format.Format, _ *rtp.Packet) {
		if m == vm {
			packet()
		}
	})
	if _, err := c.Play(nil); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// rtspViewer is a gortsplib client playing a camera through a relay,
// recording when each video packet arrived.
type rtspViewer struct {
	c      *gortsplib.Client
	mu     sync.Mutex
	at     []time.Time
	ended  chan error // Wait's answer once the session ends
	handle string
}

// startRTSPViewer starts a gortsplib camera at site's agent and plays it
// over TCP through relay via until 50 video packets have arrived.
func startRTSPViewer(t *testing.T, via *relayProc, in installation, site string) *rtspViewer {
	ctx := context.Background()
	v := &rtspViewer{handle: addCamera(t, via, in, site, "RTSP camera kept"), ended: make(chan error, 1)}
	var err error
	var out struct {
		URL string `json:"url"`
	}
	must(t, via.apiClient().Do(ctx, "POST", "/api/handles/"+v.handle+"/rtsp-url", map[string]any{"path": "/kept"}, &out, demo.Bearer(in.token)))
	testwait.For(t, 30*time.Second, "RTSP play through "+via.node, func() bool {
		v.c, err = play(out.URL, gortsplib.ProtocolTCP, func() {
			v.mu.Lock()
			v.at = append(v.at, time.Now())
			v.mu.Unlock()
		})
		return err == nil
	})
	t.Cleanup(v.c.Close)
	go func() { v.ended <- v.c.Wait() }()
	testwait.For(t, 30*time.Second, "50 video packets", func() bool { return v.packets() >= 50 })
	return v
}

func (v *rtspViewer) packets() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.at)
}

// gapAfter is the longest pause between video packets that arrived after
// t0, and how many arrived.
func (v *rtspViewer) gapAfter(t0 time.Time) (gap time.Duration, n int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	prev := t0
	for _, at := range v.at {
		if at.Before(t0) {
			prev = at
			continue
		}
		gap = max(gap, at.Sub(prev))
		prev = at
		n++
	}
	return gap, n
}

// keepsPlaying requires that the viewer's session did not end and that 50
// more video packets arrived after t0 within 30 s; it returns the gap.
func (v *rtspViewer) keepsPlaying(t *testing.T, t0 time.Time) time.Duration {
	t.Helper()
	testwait.For(t, 30*time.Second, "50 video packets after the cut", func() bool {
		select {
		case err := <-v.ended:
			t.Fatalf("the RTSP viewer's session ended: %v", err)
		default:
		}
		_, n := v.gapAfter(t0)
		return n >= 50
	})
	gap, _ := v.gapAfter(t0)
	return gap
}
