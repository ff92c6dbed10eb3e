package rtsp

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// passthrough is a client that drives its own camera connection: every
// request is forwarded (URLs rewritten, grant removed, the camera's
// challenge answered with the stored login), every answer and packet
// comes back in the order the camera sent them. Session ids, timeouts and
// the methods themselves pass untouched; the only thing the gateway adds
// is transport conversion for clients that want UDP, which the tunnel
// cannot carry, and for cameras that only do UDP (camudp.go).
type passthrough struct {
	c  *clientConn
	up *upstream

	// Written on the camera reader goroutine (in onAnswer), read there
	// and by the readers of the camera's UDP relays: the camera
	// connection's handlers run one at a time (upstream.hmu), in order.
	routes [256]*udpRoute
	batch  []byte // camera frames for the client, written when the reader idles

	mu        sync.Mutex // guards the rest, shared by worker and camera reader
	used      [256]bool  // interleaved channels in use on this connection
	pairs     []*udpPair
	session   string // Session header value of the camera's last answer
	timeout   int
	aggURL    string // camera-form URL for keepalives and teardown
	base      string // relay base of this client, for the camera's requests
	converted bool   // some track goes to the client over UDP
	camUDP    bool   // some track comes from the camera over UDP (camudp.go)
	playing   atomic.Bool
	torn      bool
	kaStop    chan struct{}
	lastFwd   time.Time // last request forwarded for the client
}

type udpRoute struct {
	pair *udpPair
	rtcp bool
}

// conversion is a SETUP the gateway turns from UDP (client side) into
// interleaved TCP (camera side).
type conversion struct {
	client Transport
	ch     int // channel pair asked of the camera
}

func newPassthrough(c *clientConn, up *upstream) *passthrough {
	pt := &passthrough{c: c, up: up}
	up.setHandlers(&upHandlers{
		frame:   pt.cameraFrame,
		request: pt.cameraRequest,
		idle:    pt.flushBatch,
		closed: func(error) {
			// The camera hung up: so does the client, who will reconnect.
			c.closeTransport()
		},
	})
	return pt
}

// forward sends a client request to the camera and the answer back.
func (pt *passthrough) forward(req *Request, ru relayURL) {
	c := pt.c
	creq := &Request{Method: req.Method, URL: "*", Proto: req.Proto, Header: req.Header.Clone(), Body: req.Body}
	if ru.Handle != "" {
		creq.URL = pt.up.cameraURL(ru)
	}
	base := ru.Base()
	if ru.Handle == "" {
		pt.mu.Lock()
		base = pt.base
		pt.mu.Unlock()
	}
	for i, f := range creq.Header {
		switch strings.ToLower(f.Name) {
		case "content-base", "content-location":
			creq.Header[i].Value = toCamera(f.Value, c.handle, pt.up.auth)
		}
	}
	if isSDP(creq.Header) && len(creq.Body) > 0 {
		// ANNOUNCE: the client's SDP may name the relay.
		creq.Body = RewriteSDP(creq.Body, func(u string) string { return toCamera(u, c.handle, pt.up.auth) })
	}
	var conv *conversion
	var tcpT Transport // interleaved transport asked of the camera
	tcpSetup := false
	if req.Method == "SETUP" {
		var err error
		if conv, err = pt.prepareSetup(creq); err != nil {
			c.refuse(req, err)
			return
		}
		tcpT, _, tcpSetup = interleavedOf(creq)
		tcpSetup = tcpSetup && c.g.canUDP()
	}
	pt.mu.Lock()
	pt.base = base
	pt.lastFwd = time.Now()
	switch req.Method {
	case "PLAY", "RECORD":
		pt.aggURL = creq.URL
	case "DESCRIBE", "SETUP", "ANNOUNCE":
		if pt.aggURL == "" {
			pt.aggURL = creq.URL
		}
	}
	pt.mu.Unlock()
	clientCSeq := req.CSeq()
	if tcpSetup && c.g.udpOnlyKnown(c.handle) {
		pt.setupCameraUDP(req, creq, tcpT, base, clientCSeq, conv)
		return
	}
	refusedTCP := false
	_, err := pt.up.do(c.ctx, creq, func(resp *Response) {
		if tcpSetup && resp.StatusCode == 461 {
			// The camera only does UDP: the client hears from the retry.
			refusedTCP = true
			return
		}
		pt.flushBatch() // what the camera sent before its answer goes first
		pt.onAnswer(req.Method, resp, base, clientCSeq, conv)
	})
	if err == nil && refusedTCP {
		c.g.markUDPOnly(c.handle)
		pt.setupCameraUDP(req, creq, tcpT, base, clientCSeq, conv)
		return
	}
	if err != nil {
		c.refuse(req, err)
		if pt.up.isClosed() {
			c.closeTransport()
		}
	}
}

// onAnswer turns the camera's answer into the client's, on the camera
// reader goroutine, and sends it before anything the camera sent later.
func (pt *passthrough) onAnswer(method string, resp *Response, base, clientCSeq string, conv *conversion) {
	out := &Response{Proto: resp.Proto, StatusCode: resp.StatusCode, Reason: resp.Reason, Header: resp.Header.Clone(), Body: resp.Body}
	if clientCSeq != "" {
		out.Header.Set("CSeq", clientCSeq)
	} else {
		out.Header.Del("CSeq")
	}
	rewriteResponse(out, base)
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	pt.mu.Lock()
	if s := out.Header.Get("Session"); s != "" && ok {
		pt.session = s
		if ss, ok := ParseSession(s); ok {
			pt.timeout = ss.TimeoutOrDefault()
		}
		pt.torn = false
	}
	pt.mu.Unlock()
	if conv != nil && ok {
		if err := pt.finishSetup(conv, out); err != nil {
			pt.c.g.log.Warn("rtsp: UDP for client", "client", pt.c.remote, "err", err)
			out = &Response{Proto: resp.Proto, StatusCode: 500, Header: Header{{"CSeq", clientCSeq}, {"X-Nanodems-Error", oneLine(err.Error())}}}
		}
	}
	if ok {
		switch method {
		case "PAUSE":
			pt.playing.Store(false)
		case "TEARDOWN":
			pt.playing.Store(false)
			pt.mu.Lock()
			pt.torn, pt.session = true, ""
			pt.stopKeepaliveLocked()
			pt.camUDP = false
			pt.mu.Unlock()
			pt.up.closeUDP() // the camera session's UDP ends with it
		case "PLAY", "RECORD":
			pt.playing.Store(true)
			pt.mu.Lock()
			// A camera over UDP counts neither the tunnel's TCP reads nor
			// (unless the client sends them) RTCP as signs of life.
			if (pt.converted || pt.camUDP) && pt.kaStop == nil {
				pt.startKeepaliveLocked()
			}
			pt.mu.Unlock()
		}
	}
	pt.c.out.write(out.AppendTo(nil))
}

// rewriteResponse points every URL of a camera's answer at the relay:
// Content-Base, Content-Location and Location headers, RTP-Info's url=,
// and absolute a=control lines of an SDP body (whose Content-Length
// AppendTo recomputes).
func rewriteResponse(resp *Response, base string) {
	fn := func(u string) string { return ToRelay(u, base) }
	for i, f := range resp.Header {
		switch strings.ToLower(f.Name) {
		case "content-base", "content-location", "location":
			resp.Header[i].Value = fn(f.Value)
		case "rtp-info":
			resp.Header[i].Value = RewriteRTPInfo(f.Value, fn)
		}
	}
	if isSDP(resp.Header) && len(resp.Body) > 0 {
		resp.Body = RewriteSDP(resp.Body, fn)
	}
}

func isSDP(h Header) bool {
	return strings.HasPrefix(strings.ToLower(strings.TrimSpace(h.Get("Content-Type"))), "application/sdp")
}

// prepareSetup picks the client's first transport the tunnel can carry
// and writes the camera's side of it: interleaved TCP always, since the
// tunnel is a byte stream. A client that asked for UDP gets it from the
// gateway (conversion); one that asked for TCP without naming channels
// (RFC 2326 allows it, and some VMSs do it) gets channels assigned, since
// cameras differ on whether they pick them.
func (pt *passthrough) prepareSetup(creq *Request) (*conversion, error) {
	v := creq.Header.Get("Transport")
	if v == "" {
		return nil, nil // the camera will say what it wants
	}
	ts, err := ParseTransports(v)
	if err != nil {
		return nil, Errorf(400, "malformed Transport header")
	}
	pt.mu.Lock()
	defer pt.mu.Unlock()
	for _, t := range ts {
		if t.IsMulticast() {
			continue
		}
		if t.IsTCP() {
			t = t.Clone()
			if a, b, ok := t.Ports("interleaved"); ok {
				pt.markUsedLocked(a, b)
			} else {
				ch := pt.allocLocked()
				t.Set("interleaved", fmt.Sprintf("%d-%d", ch, ch+1))
			}
			creq.Header.Set("Transport", t.String())
			return nil, nil
		}
		conv := &conversion{client: t.Clone(), ch: pt.allocLocked()}
		if conv.ch < 0 {
			return nil, Errorf(453, "no free interleaved channels")
		}
		tcp := Transport{Spec: t.Profile() + "/TCP"}
		tcp.Params = append(tcp.Params, Param{Name: "unicast"})
		tcp.Set("interleaved", fmt.Sprintf("%d-%d", conv.ch, conv.ch+1))
		if m, ok := t.Get("mode"); ok {
			tcp.Set("mode", m)
		}
		creq.Header.Set("Transport", tcp.String())
		return conv, nil
	}
	return nil, Errorf(461, "multicast cannot cross the tunnel; ask for TCP or unicast UDP")
}

func (pt *passthrough) markUsedLocked(a, b int) {
	if a >= 0 && a < 256 {
		pt.used[a] = true
	}
	if b >= 0 && b < 256 {
		pt.used[b] = true
	}
}

// allocLocked returns the lowest free even channel pair, or -1.
func (pt *passthrough) allocLocked() int {
	for ch := 0; ch < 255; ch += 2 {
		if !pt.used[ch] && !pt.used[ch+1] {
			pt.used[ch], pt.used[ch+1] = true, true
			return ch
		}
	}
	return -1
}

// finishSetup completes a converted SETUP: the camera said which
// channels it uses; the gateway opens the UDP pair that sends them to the
// client and tells the client its server ports.
func (pt *passthrough) finishSetup(conv *conversion, out *Response) error {
	camCh := conv.ch
	var camT Transport
	if ts, err := ParseTransports(out.Header.Get("Transport")); err == nil {
		camT = ts[0]
		if a, _, ok := camT.Ports("interleaved"); ok && a < 255 {
			camCh = a
		}
	}
	dst, err := clientUDPDest(conv.client, pt.c.remoteIP)
	if err != nil {
		return err
	}
	pair, err := newUDPPair(pt.c.g, pt.c.localIP, dst)
	if err != nil {
		return err
	}
	rtcpCh := byte(camCh + 1)
	pair.onRTCP = func(b []byte) {
		// Receiver reports go back to the camera, which (like any RTSP
		// server over UDP) may take them as the client's sign of life.
		// Only while playing and only RTCP: clients send "punch" packets
		// to the server ports right after SETUP, and a camera that gets
		// an interleaved frame before PLAY may hang up (gortsplib does).
		pt.c.touch()
		if pt.playing.Load() && isRTCP(b) {
			pt.up.sendFrame(append(AppendFrameHeader(make([]byte, 0, FrameHeaderLen+len(b)), rtcpCh, len(b)), b...))
		}
	}
	pair.start()
	pt.routes[camCh] = &udpRoute{pair: pair}
	pt.routes[camCh+1] = &udpRoute{pair: pair, rtcp: true}
	pt.mu.Lock()
	pt.pairs = append(pt.pairs, pair)
	pt.converted = true
	pt.mu.Unlock()
	out.Header.Set("Transport", udpAnswer(conv.client, camT, pair).String())
	return nil
}

// udpAnswer is the Transport the client gets for a converted track: its
// own ports, the gateway's, and the camera's ssrc and mode.
func udpAnswer(client, cam Transport, pair *udpPair) Transport {
	t := Transport{Spec: client.Spec}
	t.Params = append(t.Params, Param{Name: "unicast"})
	if _, ok := client.Get("dest_addr"); ok { // RTSP 2.0 (RFC 7826 §18.54)
		t.Set("dest_addr", fmt.Sprintf(`":%d"/":%d"`, pair.dst.rtp, pair.dst.rtcp))
		t.Set("src_addr", fmt.Sprintf(`"%s"/"%s"`, pair.localRTP(), pair.localRTCP()))
	} else {
		t.Set("client_port", fmt.Sprintf("%d-%d", pair.dst.rtp, pair.dst.rtcp))
		t.Set("server_port", fmt.Sprintf("%d-%d", pair.rtpPort(), pair.rtcpPort()))
	}
	if v, ok := cam.Get("ssrc"); ok {
		t.Set("ssrc", v)
	}
	if v, ok := cam.Get("mode"); ok {
		t.Set("mode", v)
	}
	return t
}

// cameraFrame sends a camera frame on: to the client's UDP ports for a
// converted track, else on the client's connection.
func (pt *passthrough) cameraFrame(it Item) {
	if r := pt.routes[it.Channel]; r != nil {
		r.pair.send(r.rtcp, it.Payload())
		return
	}
	if len(pt.batch)+len(it.Frame) > batchSize {
		pt.flushBatch()
	}
	if pt.batch == nil {
		pt.batch = pooledBuf()
	}
	pt.batch = append(pt.batch, it.Frame...)
}

// flushBatch hands the frames batched since the camera reader last idled
// to the client's output, buffer and all: one copy (out of the read
// buffer) and one write per camera read, not per packet.
func (pt *passthrough) flushBatch() {
	if len(pt.batch) > 0 {
		pt.c.out.writeOwned(pt.batch)
		pt.batch = nil
	}
}

// cameraRequest passes a request of the camera (ANNOUNCE of a new SDP,
// SET_PARAMETER, RTSP 2.0's PLAY_NOTIFY) to the client; the client's
// answer comes back through handleItem.
func (pt *passthrough) cameraRequest(req *Request) {
	pt.flushBatch()
	pt.mu.Lock()
	base := pt.base
	pt.mu.Unlock()
	r := &Request{Method: req.Method, URL: ToRelay(req.URL, base), Proto: req.Proto, Header: req.Header.Clone(), Body: req.Body}
	for i, f := range r.Header {
		switch strings.ToLower(f.Name) {
		case "content-base", "content-location":
			r.Header[i].Value = ToRelay(f.Value, base)
		}
	}
	if isSDP(r.Header) && len(r.Body) > 0 {
		r.Body = RewriteSDP(r.Body, func(u string) string { return ToRelay(u, base) })
	}
	pt.c.out.write(r.AppendTo(nil))
}

// clientFrame passes an interleaved frame of the client (RTCP receiver
// reports; media of RECORD or a backchannel) to the camera.
func (pt *passthrough) clientFrame(it Item) {
	pt.up.sendFrame(it.Frame)
}

// setupCameraUDP sends a SETUP again asking the camera for UDP to a relay
// on its LAN (camudp.go), and answers the client as if the camera had
// taken the interleaved transport tcpT.
func (pt *passthrough) setupCameraUDP(req, creq *Request, tcpT Transport, base, clientCSeq string, conv *conversion) {
	c := pt.c
	relay, err := c.g.dialCameraUDP(c.ctx, c.principal, c.handle)
	if err != nil {
		c.refuse(req, err)
		return
	}
	_, ch, _ := interleavedOf(creq)
	var attached atomic.Bool
	_, err = pt.up.do(c.ctx, udpSetupRequest(creq, tcpT, relay), func(resp *Response) {
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			camT := cameraTransport(resp)
			if a, b, ok := camT.Ports("server_port"); ok {
				relay.SetCamera(a, b)
			}
			if pt.up.attachUDP(relay, ch) {
				attached.Store(true)
				pt.mu.Lock()
				pt.camUDP = true
				pt.mu.Unlock()
			}
			resp.Header.Set("Transport", tcpAnswerFor(tcpT, camT).String())
		} else if resp.StatusCode == 461 {
			c.g.forgetUDPOnly(c.handle)
		}
		pt.flushBatch()
		pt.onAnswer(req.Method, resp, base, clientCSeq, conv)
	})
	if err != nil || !attached.Load() {
		relay.Close() // else the camera connection owns it
	}
	if err != nil {
		c.refuse(req, err)
		if pt.up.isClosed() {
			c.closeTransport()
		}
	}
}

// keepaliveInterval is how often the gateway refreshes a camera session a
// client cannot: half the camera's timeout, at least every second (some
// servers announce "timeout=1"), at most every 30 s.
func keepaliveInterval(timeout int) time.Duration {
	d := time.Duration(timeout) * time.Second / 2
	return min(max(d, time.Second), 30*time.Second)
}

func (pt *passthrough) startKeepaliveLocked() {
	stop := make(chan struct{})
	pt.kaStop = stop
	pt.c.g.goFn(func() { pt.keepaliveLoop(stop) })
}

func (pt *passthrough) stopKeepaliveLocked() {
	if pt.kaStop != nil {
		close(pt.kaStop)
		pt.kaStop = nil
	}
}

// keepaliveLoop runs while a converted session plays: a UDP client's
// keepalives may be only RTCP (RFC 2326 §A.1 lets RTCP stand in for
// them), which a camera over TCP does not count, so the gateway refreshes
// the camera session itself when the client has sent no request for half
// a timeout. A camera the gateway set up over UDP (camudp.go) needs the
// same: it hears no RTCP from a TCP client, and the tunnel's TCP reads
// are no sign of life to a UDP session. The loop also ends a UDP client
// that has gone silent altogether: over UDP nothing else would notice.
func (pt *passthrough) keepaliveLoop(stop chan struct{}) {
	pt.mu.Lock()
	every := keepaliveInterval(pt.timeout)
	timeout := time.Duration(max(pt.timeout, DefaultSessionTimeout)) * time.Second
	pt.mu.Unlock()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-pt.c.ctx.Done():
			return
		case <-t.C:
		}
		pt.mu.Lock()
		due := time.Since(pt.lastFwd) >= every
		url, sess := pt.aggURL, sessionID(pt.session)
		udpClient := pt.converted
		pt.mu.Unlock()
		if udpClient && time.Since(time.Unix(0, pt.c.lastInput.Load())) > 2*timeout {
			pt.c.g.log.Info("rtsp: UDP client silent; ending its session", "client", pt.c.remote)
			pt.c.closeTransport()
			return
		}
		if due {
			ctx, cancel := context.WithTimeout(pt.c.ctx, pt.c.g.cfg.CameraTimeout)
			err := pt.up.keepalive(ctx, url, sess)
			cancel()
			if err != nil {
				return
			}
		}
	}
}

// close ends the camera side of a client that is gone: a session it did
// not tear down is torn down now, since the camera would otherwise keep
// it (and its bandwidth) until its own timeout, and a camera allows only
// a few sessions.
func (pt *passthrough) close() {
	pt.mu.Lock()
	pt.stopKeepaliveLocked()
	sess, url, torn := pt.session, pt.aggURL, pt.torn
	pairs := pt.pairs
	pt.pairs = nil
	pt.mu.Unlock()
	if sess != "" && !torn {
		pt.up.teardown(url, sessionID(sess))
	}
	pt.up.close()
	for _, p := range pairs {
		p.close()
	}
}

// clientUDPDest reads where a UDP client wants its packets. Only the
// client's own address is accepted: a destination= elsewhere would let
// anyone aim a camera's stream at a third party (RFC 2326 §15.1).
func clientUDPDest(t Transport, clientIP net.IP) (udpDest, error) {
	d := udpDest{ip: clientIP}
	if a, b, ok := t.Ports("client_port"); ok {
		d.rtp, d.rtcp = a, b
	} else if v, ok := t.Get("dest_addr"); ok {
		addrs := strings.Split(v, "/")
		parse := func(s string) (int, error) {
			s = strings.Trim(strings.TrimSpace(s), `"`)
			host, port, err := net.SplitHostPort(s)
			if err != nil {
				return 0, err
			}
			if host != "" {
				if ip := net.ParseIP(host); ip == nil || !ip.Equal(clientIP) {
					return 0, fmt.Errorf("destination %s is not the client", host)
				}
			}
			return strconv.Atoi(port)
		}
		var err error
		if d.rtp, err = parse(addrs[0]); err != nil {
			return d, Errorf(461, "bad dest_addr: %v", err)
		}
		d.rtcp = d.rtp + 1
		if len(addrs) > 1 {
			if d.rtcp, err = parse(addrs[1]); err != nil {
				return d, Errorf(461, "bad dest_addr: %v", err)
			}
		}
	} else {
		return d, Errorf(461, "UDP transport without client_port")
	}
	if d.rtp <= 0 || d.rtp > 65535 || d.rtcp <= 0 || d.rtcp > 65535 {
		return d, Errorf(461, "bad client ports")
	}
	if clientIP == nil {
		return d, Errorf(461, "UDP needs a client IP address")
	}
	return d, nil
}

// isRTCP reports whether b looks like an RTCP packet (RFC 3550 §6.4:
// version 2, packet types 200 to 206).
func isRTCP(b []byte) bool {
	return len(b) >= 8 && b[0]>>6 == 2 && b[1] >= 200 && b[1] <= 206
}
