// Package rtsptest is a stand-in IP camera for tests of the RTSP gateway:
// a real RTSP server (gortsplib) with Digest authentication, a session
// timeout, and a synthetic H.264 stream that ffmpeg decodes, which
// records what it was asked (methods, URLs, transports) so tests can
// assert what the camera actually saw behind the gateway.
//
// Only tests import it; the gateway's binaries do not carry gortsplib.
package rtsptest

import (
	"cmp"
	_ "embed"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/auth"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// gop is one second of 64x48 H.264 (baseline, 25 fps, one IDR, access
// unit delimiters), made with
//
//	ffmpeg -f lavfi -i testsrc=size=64x48:rate=25 -frames:v 25 -c:v libx264 \
//	  -profile:v baseline -preset ultrafast -tune zerolatency -g 25 \
//	  -x264-params aud=1:keyint=25:min-keyint=25:scenecut=0 -f h264 gop.h264
//
//go:embed gop.h264
var gop []byte

// AccessUnits are the frames of the embedded GOP, NAL units without
// start codes; the first is the IDR (with SPS and PPS).
var AccessUnits = splitAUs(gop)

func splitAUs(b []byte) [][][]byte {
	var aus [][][]byte
	for _, n := range splitAnnexB(b) {
		if h264.NALUType(n[0]&0x1f) == h264.NALUTypeAccessUnitDelimiter {
			aus = append(aus, nil)
			continue
		}
		if len(aus) == 0 {
			aus = append(aus, nil)
		}
		aus[len(aus)-1] = append(aus[len(aus)-1], n)
	}
	return aus
}

// splitAnnexB cuts a byte stream at its start codes (00 00 01).
func splitAnnexB(b []byte) [][]byte {
	var out [][]byte
	start := -1
	for i := 0; i+3 <= len(b); i++ {
		if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 {
			if start >= 0 {
				end := i
				for end > start && b[end-1] == 0 {
					end--
				}
				out = append(out, b[start:end])
			}
			start = i + 3
			i += 2
		}
	}
	if start >= 0 && start < len(b) {
		out = append(out, b[start:])
	}
	return out
}

// Options configure a camera.
type Options struct {
	// User and Pass turn on authentication (Basic and Digest MD5, as
	// cameras offer them). Digest is checked strictly: the uri must be
	// the request line's URL, so a client's Digest over another URL
	// fails, as at strict cameras.
	User, Pass string
	// BasicOnly offers only Basic, the scheme a client can answer
	// through the gateway without it knowing the login (Digest signs the
	// URL, and the client's URL is the relay's).
	BasicOnly bool
	// SessionTimeout is how long a session lives without a keepalive
	// (RTSP request, or RTCP over UDP; any read over TCP). Default 60 s.
	// The camera announces timeout=SessionTimeout-5s (at least 1), as
	// gortsplib does for Windows clients.
	SessionTimeout time.Duration
	// Manual stops the automatic 25 fps feed: the test writes frames.
	Manual bool
	// Audio adds a G.711 track.
	Audio bool
	// Bitrate, if set, pads every frame so the stream carries about this
	// many bits per second (perf tests).
	Bitrate int
	// UDPOnly makes a camera that streams only over UDP, as some
	// firmwares do: it listens on a UDP port pair (server_port) and
	// answers 461 Unsupported Transport to any SETUP that asks for TCP.
	UDPOnly bool
	// Addr, if set, is the address to listen on (a camera restarted on
	// the port of one closed before); default 127.0.0.1, any port.
	Addr string
}

// Request is one request the camera received.
type Request struct {
	Method    string
	URL       string
	Header    map[string]string // first value of each header
	Transport string
}

// Camera is a running stand-in camera.
type Camera struct {
	Addr string // host:port
	Port int

	o      Options
	srv    *gortsplib.Server
	stream *gortsplib.ServerStream
	// ready is closed once stream is initialized. The server accepts from
	// Start on, before the stream can exist (it needs the started
	// server); a client already at the port, as a gateway reconnecting to
	// a restarted camera is, must not be served a stream half built.
	ready chan struct{}
	video *description.Media
	audio *description.Media
	venc  *rtph264.Encoder

	mu       sync.Mutex
	requests []Request
	setups   []string // transports of SETUPs, "TCP" or "UDP"

	opened, closed atomic.Int64
	packets        atomic.Int64 // RTP packets written to the stream
	rtcpIn         atomic.Int64 // RTCP packets received from clients
	refusedTCP     atomic.Int64 // SETUPs answered 461 (UDPOnly)
	writeMu        sync.Mutex
	frame          int
	bitrate        int
	stop           chan struct{}
	wg             sync.WaitGroup
}

// Start runs a camera on 127.0.0.1 (any port).
func Start(o Options) (*Camera, error) {
	if o.SessionTimeout == 0 {
		o.SessionTimeout = 60 * time.Second
	}
	c := &Camera{o: o, stop: make(chan struct{}), bitrate: o.Bitrate}
	sps, pps := AccessUnits[0][0], AccessUnits[0][1]
	vf := &format.H264{PayloadTyp: 96, SPS: sps, PPS: pps, PacketizationMode: 1}
	c.video = &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{vf}}
	desc := &description.Session{Medias: []*description.Media{c.video}}
	if o.Audio {
		c.audio = &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{&format.G711{PayloadTyp: 0, MULaw: true, SampleRate: 8000, ChannelCount: 1}}}
		desc.Medias = append(desc.Medias, c.audio)
	}
	var err error
	if c.venc, err = vf.CreateEncoder(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cmp.Or(o.Addr, "127.0.0.1:0"))
	if err != nil {
		return nil, err
	}
	c.Addr = ln.Addr().String()
	c.Port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	c.srv = &gortsplib.Server{
		Handler:     c,
		RTSPAddress: c.Addr,
		IdleTimeout: o.SessionTimeout,
		ReadTimeout: 10 * time.Second,
	}
	if o.BasicOnly {
		c.srv.AuthMethods = []auth.VerifyMethod{auth.VerifyMethodBasic}
	}
	if o.UDPOnly {
		rtp, err := freeUDPPair()
		if err != nil {
			return nil, err
		}
		c.srv.UDPRTPAddress = "127.0.0.1:" + strconv.Itoa(rtp)
		c.srv.UDPRTCPAddress = "127.0.0.1:" + strconv.Itoa(rtp+1)
	}
	c.ready = make(chan struct{})
	if err := c.srv.Start(); err != nil {
		return nil, err
	}
	c.stream = &gortsplib.ServerStream{Server: c.srv, Desc: desc}
	err = c.stream.Initialize()
	close(c.ready)
	if err != nil {
		c.srv.Close()
		return nil, err
	}
	if !o.Manual {
		c.wg.Add(1)
		go c.feed()
	}
	return c, nil
}

// freeUDPPair finds an even port p on 127.0.0.1 with p+1 free too (the
// server binds them itself, right after).
func freeUDPPair() (int, error) {
	for range 64 {
		a, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return 0, err
		}
		p := a.LocalAddr().(*net.UDPAddr).Port
		if p%2 == 0 && p < 65535 {
			b, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p + 1})
			if err == nil {
				b.Close()
				a.Close()
				return p, nil
			}
		}
		a.Close()
	}
	return 0, fmt.Errorf("rtsptest: no free even/odd UDP port pair")
}

// Close stops the camera.
func (c *Camera) Close() {
	select {
	case <-c.stop:
		return
	default:
	}
	close(c.stop)
	c.wg.Wait()
	c.stream.Close()
	c.srv.Close()
}

// feed writes 25 frames a second, looping over the GOP.
func (c *Camera) feed() {
	defer c.wg.Done()
	t := time.NewTicker(40 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.WriteFrames(1)
		}
	}
}

// WriteFrames writes the next n frames of the looping GOP (and, with
// Audio, 40 ms of silence per frame); it returns the RTP packets written.
func (c *Camera) WriteFrames(n int) []*rtp.Packet {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	var all []*rtp.Packet
	for range n {
		au := AccessUnits[c.frame%len(AccessUnits)]
		if c.bitrate > 0 {
			// An extra NAL of type 12 (filler data), which decoders skip,
			// sized to the bitrate.
			fill := make([]byte, max(c.bitrate/8/25-200, 2))
			fill[0] = 12
			for i := 1; i < len(fill); i++ {
				fill[i] = 0xff
			}
			fill[len(fill)-1] = 0x80
			au = append(append([][]byte(nil), au...), fill)
		}
		pkts, err := c.venc.Encode(au)
		if err != nil {
			panic(err)
		}
		ts := uint32(c.frame * 3600) // 90 kHz / 25 fps
		for _, p := range pkts {
			p.Timestamp = ts
			c.stream.WritePacketRTP(c.video, p)
		}
		c.packets.Add(int64(len(pkts)))
		all = append(all, pkts...)
		if c.audio != nil {
			p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(c.frame), Timestamp: uint32(c.frame * 320), SSRC: 0x1234}, Payload: make([]byte, 320)}
			c.stream.WritePacketRTP(c.audio, p)
		}
		c.frame++
	}
	return all
}

// SetBitrate changes the padding of the frames WriteFrames writes next.
func (c *Camera) SetBitrate(bps int) {
	c.writeMu.Lock()
	c.bitrate = bps
	c.writeMu.Unlock()
}

// Frame is the index of the next frame WriteFrames writes; frames with
// Frame%25 == 0 are keyframes.
func (c *Camera) Frame() int {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	return c.frame
}

// Requests returns the requests the camera received so far.
func (c *Camera) Requests() []Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Request(nil), c.requests...)
}

// Methods returns the methods received, in order ("OPTIONS DESCRIBE …").
func (c *Camera) Methods() string {
	var m []string
	for _, r := range c.Requests() {
		m = append(m, r.Method)
	}
	return strings.Join(m, " ")
}

// Setups returns the lower transport of each SETUP the camera accepted:
// "TCP" or "UDP".
func (c *Camera) Setups() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.setups...)
}

// SessionsOpened and SessionsClosed count RTSP sessions.
func (c *Camera) SessionsOpened() int64 { return c.opened.Load() }
func (c *Camera) SessionsClosed() int64 { return c.closed.Load() }

// Packets counts RTP packets of the video track written so far.
func (c *Camera) Packets() int64 { return c.packets.Load() }

// Sessions is the number of sessions open now.
func (c *Camera) Sessions() int64 { return c.opened.Load() - c.closed.Load() }

// WaitSessions waits until n sessions are open.
func (c *Camera) WaitSessions(n int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for c.Sessions() != n {
		if time.Now().After(deadline) {
			return fmt.Errorf("camera has %d sessions open (opened %d, closed %d), want %d", c.Sessions(), c.opened.Load(), c.closed.Load(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// URL is the camera's own URL of path.
func (c *Camera) URL(path string) string { return "rtsp://" + c.Addr + path }

// OnRequest records every request.
func (c *Camera) OnRequest(_ *gortsplib.ServerConn, req *base.Request) {
	r := Request{Method: string(req.Method), URL: req.URL.String(), Header: map[string]string{}}
	for k, v := range req.Header {
		if len(v) > 0 {
			r.Header[k] = v[0]
		}
	}
	r.Transport = r.Header["Transport"]
	c.mu.Lock()
	c.requests = append(c.requests, r)
	c.mu.Unlock()
}

// OnSessionOpen counts sessions.
func (c *Camera) OnSessionOpen(*gortsplib.ServerHandlerOnSessionOpenCtx) { c.opened.Add(1) }

// OnSessionClose counts sessions.
func (c *Camera) OnSessionClose(*gortsplib.ServerHandlerOnSessionCloseCtx) { c.closed.Add(1) }

func (c *Camera) auth(sc *gortsplib.ServerConn, req *base.Request) (*base.Response, error) {
	if c.o.User == "" || sc.VerifyCredentials(req, c.o.User, c.o.Pass) {
		return nil, nil
	}
	return &base.Response{StatusCode: base.StatusUnauthorized}, liberrors.ErrServerAuth{}
}

// OnDescribe serves the stream on any path.
func (c *Camera) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	<-c.ready
	if r, err := c.auth(ctx.Conn, ctx.Request); r != nil {
		return r, nil, err
	}
	return &base.Response{StatusCode: base.StatusOK}, c.stream, nil
}

// OnSetup checks credentials and records the transport.
func (c *Camera) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	<-c.ready
	if r, err := c.auth(ctx.Conn, ctx.Request); r != nil {
		return r, nil, err
	}
	proto := "UDP"
	if ctx.Transport.Protocol == gortsplib.ProtocolTCP {
		proto = "TCP"
		if c.o.UDPOnly {
			c.refusedTCP.Add(1)
			return &base.Response{StatusCode: base.StatusUnsupportedTransport}, nil, nil
		}
	}
	c.mu.Lock()
	c.setups = append(c.setups, proto)
	c.mu.Unlock()
	return &base.Response{StatusCode: base.StatusOK}, c.stream, nil
}

// OnPlay accepts, and counts the client's RTCP from then on.
func (c *Camera) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	ctx.Session.OnPacketRTCPAny(func(*description.Media, rtcp.Packet) { c.rtcpIn.Add(1) })
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// RTCPReceived counts the RTCP packets (receiver reports) clients sent
// while playing, over TCP or UDP.
func (c *Camera) RTCPReceived() int64 { return c.rtcpIn.Load() }

// RefusedTCP counts the SETUPs a UDPOnly camera answered with 461.
func (c *Camera) RefusedTCP() int64 { return c.refusedTCP.Load() }

// OnGetParameter accepts keepalives.
func (c *Camera) OnGetParameter(ctx *gortsplib.ServerHandlerOnGetParameterCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// String describes the camera.
func (c *Camera) String() string {
	return "camera at " + c.Addr + " (port " + strconv.Itoa(c.Port) + ")"
}
