package rtsp

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
)

// Cameras that only do UDP. The tunnel is a byte stream, so the gateway
// always asks the camera for interleaved TCP; a camera that answers 461
// Unsupported Transport gets the same SETUP again with
// RTP/AVP;unicast;client_port=a-b, where a-b is a UDP port pair the agent
// bound on the camera's LAN (UDPBackend.DialUDP; mux.FlagUDP on the
// wire). The camera's datagrams then come back over the relay's stream
// and are handed to the camera connection's frame handler as interleaved
// frames on the channels the camera was first asked for, so everything
// after (pass-through to a TCP or UDP client, fan-out) works as if the
// camera had done TCP. Frames of the client on those channels (RTCP
// receiver reports, a backchannel's media) go out as datagrams.
//
// The gateway remembers such a camera for udpOnlyFor, so later SETUPs go
// straight to UDP instead of paying a refused round trip each.

// udpOnlyFor is how long a camera that answered 461 to TCP is set up over
// UDP without asking for TCP first. Whether a camera streams over TCP is
// its configuration, not a session's state, so it may be remembered for a
// while; and a camera that meanwhile does TCP again still does UDP, so a
// stale entry costs a little efficiency, never a stream.
const udpOnlyFor = 10 * time.Minute

// udpOnlyKnown reports whether handle h's camera is known to refuse TCP.
func (g *Gateway) udpOnlyKnown(h string) bool {
	g.srcMu.Lock()
	defer g.srcMu.Unlock()
	until, ok := g.udpOnly[h]
	if ok && !time.Now().Before(until) {
		delete(g.udpOnly, h)
		return false
	}
	return ok
}

func (g *Gateway) markUDPOnly(h string) {
	g.srcMu.Lock()
	g.udpOnly[h] = time.Now().Add(udpOnlyFor)
	g.srcMu.Unlock()
	g.log.Info("rtsp: camera refuses interleaved TCP; relaying UDP on its LAN", "handle", h)
}

// forgetUDPOnly drops what markUDPOnly remembered, when the camera
// refused UDP too: its 461 was about something else (a profile, say),
// and TCP should be asked for again next time.
func (g *Gateway) forgetUDPOnly(h string) {
	g.srcMu.Lock()
	delete(g.udpOnly, h)
	g.srcMu.Unlock()
}

// canUDP reports whether the backend can relay UDP at all.
func (g *Gateway) canUDP() bool {
	_, ok := g.cfg.Backend.(UDPBackend)
	return ok
}

// dialCameraUDP opens a UDP relay next to handle h's camera.
func (g *Gateway) dialCameraUDP(ctx context.Context, p Principal, h string) (UDPRelay, error) {
	ub, ok := g.cfg.Backend.(UDPBackend)
	if !ok {
		return nil, Errorf(461, "the camera only streams over UDP, which this relay cannot carry")
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.CameraTimeout)
	defer cancel()
	r, err := ub.DialUDP(ctx, p, h)
	if err != nil {
		return nil, fmt.Errorf("UDP relay for a camera that refuses TCP: %w", err)
	}
	return r, nil
}

// cameraUDPTransport is the SETUP Transport that asks the camera for UDP
// to the relay's port pair, in place of the interleaved tcp one.
func cameraUDPTransport(tcp Transport, rtp, rtcp int) Transport {
	t := Transport{Spec: tcp.Profile(), Params: []Param{{Name: "unicast"}}}
	t.Set("client_port", strconv.Itoa(rtp)+"-"+strconv.Itoa(rtcp))
	if m, ok := tcp.Get("mode"); ok {
		t.Set("mode", m)
	}
	return t
}

// tcpAnswerFor is the camera's answer to a UDP SETUP as it would have been
// to the interleaved one asked first: the channels asked for, and the
// camera's ssrc and mode.
func tcpAnswerFor(tcp, cam Transport) Transport {
	t := Transport{Spec: tcp.Spec, Params: []Param{{Name: "unicast"}}}
	if v, ok := tcp.Get("interleaved"); ok {
		t.Set("interleaved", v)
	}
	for _, name := range []string{"ssrc", "mode"} {
		if v, ok := cam.Get(name); ok {
			t.Set(name, v)
		}
	}
	return t
}

// interleavedOf returns the interleaved TCP transport of a SETUP the
// gateway is about to send to the camera, and its RTP channel.
func interleavedOf(req *Request) (Transport, int, bool) {
	ts, err := ParseTransports(req.Header.Get("Transport"))
	if err != nil || len(ts) == 0 || !ts[0].IsTCP() {
		return Transport{}, 0, false
	}
	a, _, ok := ts[0].Ports("interleaved")
	if !ok || a < 0 || a > 254 {
		return Transport{}, 0, false
	}
	return ts[0], a, true
}

// cameraTransport is the first Transport of a camera's answer.
func cameraTransport(resp *Response) Transport {
	if ts, err := ParseTransports(resp.Header.Get("Transport")); err == nil && len(ts) > 0 {
		return ts[0]
	}
	return Transport{}
}

// udpSetupRequest is req with its Transport asking for UDP to relay.
func udpSetupRequest(req *Request, tcp Transport, relay UDPRelay) *Request {
	rtp, rtcp := relay.Ports()
	u := &Request{Method: req.Method, URL: req.URL, Proto: req.Proto, Header: req.Header.Clone(), Body: req.Body}
	u.Header.Set("Transport", cameraUDPTransport(tcp, rtp, rtcp).String())
	return u
}

// camUDP is a UDP relay attached to a camera connection: its datagrams
// are the camera's frames on channels ch (RTP) and ch+1 (RTCP).
type camUDP struct {
	r      UDPRelay
	ch     byte
	closed atomic.Bool // closed by the gateway: its reader ends quietly
}

func (cu *camUDP) close() {
	cu.closed.Store(true)
	cu.r.Close()
}

// attachUDP makes r carry the camera's channels ch and ch+1 from now on,
// and starts its reader. It takes r over: if the camera connection is
// already gone, r is closed and attachUDP returns false.
func (up *upstream) attachUDP(r UDPRelay, ch int) bool {
	cu := &camUDP{r: r, ch: byte(ch)}
	up.udpMu.Lock()
	if up.isClosed() || ch < 0 || ch > 254 {
		up.udpMu.Unlock()
		r.Close()
		return false
	}
	for _, c := range []int{ch, ch + 1} {
		if old := up.udpCh[c].Load(); old != nil {
			old.close() // SETUP of the same channels again
		}
		up.udpCh[c].Store(cu)
	}
	up.udpRelays = append(up.udpRelays, cu)
	up.udpMu.Unlock()
	up.g.goFn(func() { up.readUDP(cu) })
	return true
}

// closeUDP ends every UDP relay of the connection (its camera session
// ended: TEARDOWN, or the connection itself).
func (up *upstream) closeUDP() {
	up.udpMu.Lock()
	relays := up.udpRelays
	up.udpRelays = nil
	for i := range up.udpCh {
		up.udpCh[i].Store(nil)
	}
	up.udpMu.Unlock()
	for _, cu := range relays {
		cu.close()
	}
}

// readUDP hands the relay's datagrams to the owner's frame handler as
// interleaved frames. Handlers are not safe for concurrent use and expect
// the camera reader's order of work, so they run under hmu, as the camera
// reader runs them; the frame aliases this goroutine's buffer, as a
// camera frame aliases the reader's.
func (up *upstream) readUDP(cu *camUDP) {
	buf := make([]byte, FrameHeaderLen+MaxFramePayload)
	for {
		n, rtcp, err := cu.r.ReadDatagram(buf[FrameHeaderLen:])
		if err != nil {
			if !cu.closed.Load() && !up.isClosed() {
				// The relay broke under a live session (the agent cut it):
				// the stream is gone, so is the session; the client
				// reconnects.
				up.g.log.Info("rtsp: camera's UDP relay ended", "err", err)
				up.fail(fmt.Errorf("UDP relay: %w", err))
			}
			return
		}
		ch := cu.ch
		if rtcp {
			ch++
		}
		AppendFrameHeader(buf[:0], ch, n)
		frame := buf[: FrameHeaderLen+n : FrameHeaderLen+n]
		up.hmu.Lock()
		if cu.closed.Load() || up.isClosed() {
			up.hmu.Unlock()
			continue // ReadDatagram fails next
		}
		h := up.h.Load()
		if h.frame != nil {
			h.frame(Item{Kind: KindFrame, Channel: ch, Frame: frame})
		}
		if h.idle != nil && !cu.r.Pending() {
			h.idle()
		}
		up.hmu.Unlock()
	}
}

// sendFrame sends an interleaved frame of the client to the camera: as a
// datagram on a channel the camera takes over UDP, else on the camera
// connection. A '$' frame on the connection of a camera that set the
// channel up over UDP would be garbage to it.
func (up *upstream) sendFrame(frame []byte) error {
	if len(frame) >= FrameHeaderLen {
		if cu := up.udpCh[frame[1]].Load(); cu != nil {
			return cu.r.WriteDatagram(frame[1] != cu.ch, frame[FrameHeaderLen:])
		}
	}
	return up.writeRaw(frame)
}
