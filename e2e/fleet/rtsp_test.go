package fleet

import (
	"context"
	"fmt"
	"strconv"
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
	cam, err := rtsptest.Start(rtsptest.Options{})
	must(t, err)
	t.Cleanup(cam.Close)
	var dev struct {
		Handles map[string]string `json:"handles"`
	}
	ctx := context.Background()
	must(t, via.apiClient().Do(ctx, "POST", "/api/sites/"+site+"/devices", map[string]any{"host": "127.0.0.1", "ports": []int{cam.Port}, "label": "RTSP camera"}, &dev, demo.Bearer(in.token)))
	handle := dev.Handles[strconv.Itoa(cam.Port)]
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
