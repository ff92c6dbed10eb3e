package rtsp

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Fan-out. When several viewers of one tenant pull the same handle and
// path, the site's uplink should carry the stream once: the gateway holds
// one camera session (a source) and copies each packet to every viewer.
// The gateway then is the viewers' RTSP server: it answers DESCRIBE from
// the camera's description, SETUP with each viewer's own transport (TCP
// or UDP), and starts a viewer at the next keyframe, since it joins a
// stream that is already running.
//
// A source exists only where the gateway can open the camera session by
// itself: with the device's stored login, or for a camera that asks for
// none. A camera that wants the client's own password is served per
// client (pass-through): sharing that session would hand its stream to
// viewers who never gave the password. Recordings (an NVR's playback URL,
// which each viewer seeks on its own) and sessions with an ONVIF
// backchannel are never shared either.
//
// The packet path is the camera reader goroutine (or, for a camera that
// only does UDP, its relays' readers, one at a time): for each packet it
// walks an immutable snapshot of the playing viewers and queues a
// reference to the packet for each, never blocking. A viewer whose queue
// is over ViewerBacklog skips to the next keyframe; one that stays over it
// for DropAfter is disconnected.

// notSharedFor is how long a path whose camera asked the client for its
// own login is served without trying to share it again.
const notSharedFor = time.Minute

// source is one shared camera session.
type source struct {
	g    *Gateway
	key  string
	path string // the camera path and query the viewers asked for
	// The creating viewer's principal and handle: a camera that only does
	// UDP needs relays opened for the source (camudp.go).
	principal Principal
	handle    string

	ready chan struct{} // closed when the camera answered DESCRIBE (or failed)
	err   error         // set before ready closes: not shared, joiners go alone
	refs  int           // connections joined (guarded by g.srcMu)
	dead  atomic.Bool

	// Set before ready closes, read-only after.
	up       *upstream
	describe *Response // the camera's answer, camera form
	base     string    // camera-form base URL of the controls
	aggURL   string    // camera-form aggregate control URL
	tracks   []*srcTrack
	byCh     atomic.Pointer[[256]*srcTrack]

	opMu      sync.Mutex // serializes SETUP and PLAY towards the camera
	setupDone bool
	setupErr  error
	playing   bool
	playResp  *Response

	mu      sync.Mutex // guards session, subs, kaStop, closed
	session string     // the camera's Session header value
	timeout int
	subs    []*subscription
	snap    atomic.Pointer[[]*subscription] // copy of subs for the packet path
	kaStop  chan struct{}
	closed  bool
	once    sync.Once

	dirty []*subscription // packet path: queued to since the last kick
}

type srcTrack struct {
	idx     int
	media   Media
	control string // camera-form absolute URL
	video   bool   // the gateway knows the codec's keyframes
	ch      int    // camera channels ch (RTP) and ch+1 (RTCP)
	ok      bool   // set up at the camera
	camT    Transport
}

// viewer is a client connection's place in a source.
type viewer struct {
	c      *clientConn
	src    *source
	base   string // relay base URL as this viewer reaches it
	tracks map[int]*viewerSetup
	used   [256]bool
	sub    *subscription
	pairs  []*udpPair
	udp    *udpSender
}

// viewerSetup is one SETUP of a viewer.
type viewerSetup struct {
	tcp  bool
	ch   byte // viewer's RTP channel; RTCP is ch+1
	pair *udpPair
}

// subscription is a playing viewer as the packet path sees it. It is
// made at PLAY and dropped at PAUSE or leave, never changed by the
// viewer's goroutine once published; only the packet path writes its
// mutable fields.
type subscription struct {
	v         *viewer
	udp       *udpSender
	tracks    []*subTrack // by source track index; nil: not set up
	overSince int64       // unix nanos since the viewer is over its backlog
	dropped   bool
	dirty     bool // on the source's dirty list
}

type subTrack struct {
	viewerSetup
	video   bool
	waitKey bool
}

// shareable says whether a DESCRIBE may be served from a shared session.
func (c *clientConn) shareable(req *Request) bool {
	if c.g.cfg.NoFanOut || req.Header.Has("Require") {
		// Require: extensions (ONVIF backchannel, replay) are per client.
		return false
	}
	if req.Header.Has("Authorization") {
		// The client logs in to the camera itself: without a stored login
		// the camera session is the client's own. (With one, the client's
		// header is dropped anyway.)
		if _, _, ok := c.g.cfg.Backend.Credentials(c.ctx, c.handle); !ok {
			return false
		}
	}
	return true
}

func (g *Gateway) sourceKey(c *clientConn, ru relayURL) string {
	return c.principal.Tenant + "\x00" + c.handle + "\x00" + ru.Key()
}

// tryShare serves a DESCRIBE from a shared session, creating it if none
// runs. It returns false if the request must be served by the client's own
// camera connection (the caller then forwards it).
func (c *clientConn) tryShare(req *Request, ru relayURL) bool {
	g := c.g
	key := g.sourceKey(c, ru)
	g.srcMu.Lock()
	if until, ok := g.notShared[key]; ok {
		if time.Now().Before(until) {
			g.srcMu.Unlock()
			return false
		}
		delete(g.notShared, key)
	}
	s := g.sources[key]
	creator := s == nil || s.dead.Load()
	if creator {
		s = &source{g: g, key: key, path: ru.Key(), principal: c.principal, handle: c.handle, ready: make(chan struct{})}
		g.sources[key] = s
		g.stats.Sources.Add(1)
	}
	s.refs++
	g.srcMu.Unlock()

	if creator {
		return c.createSource(s, req, ru)
	}
	t := time.NewTimer(2 * g.cfg.CameraTimeout)
	defer t.Stop()
	select {
	case <-s.ready:
	case <-t.C:
		g.leaveSource(s)
		c.refuse(req, errCameraTimeout)
		return true
	case <-c.ctx.Done():
		g.leaveSource(s)
		return true
	}
	if s.err != nil {
		g.leaveSource(s)
		return false // the camera wants this client's own login, or similar
	}
	c.joinView(s, req, ru)
	return true
}

// createSource opens the camera session of a new source with the first
// viewer's DESCRIBE.
func (c *clientConn) createSource(s *source, req *Request, ru relayURL) bool {
	g := c.g
	up, err := g.dialUpstream(c.ctx, c.principal, c.handle)
	if err != nil {
		s.abort(err)
		g.leaveSource(s)
		c.refuse(req, err)
		return true
	}
	s.up = up
	up.setHandlers(&upHandlers{frame: s.onFrame, request: s.onRequest, idle: s.kick, closed: func(error) { s.fail() }})
	dreq := &Request{Method: "DESCRIBE", URL: up.cameraURL(ru), Proto: "RTSP/1.0", Header: req.Header.Clone()}
	for _, h := range []string{"CSeq", "Authorization", "Session", "Content-Length"} {
		dreq.Header.Del(h)
	}
	resp, err := up.do(c.ctx, dreq, nil)
	if err != nil {
		s.abort(err)
		g.leaveSource(s)
		c.refuse(req, err)
		return true
	}
	if why := s.init(resp, dreq.URL); why != "" {
		// Not shared: this client keeps the camera connection, and the
		// camera's answer (a 401 with its challenges, a 404, a recording's
		// description) is the answer to its DESCRIBE.
		g.log.Debug("rtsp: not sharing", "handle", c.handle, "why", why)
		if resp.StatusCode == 401 {
			g.srcMu.Lock()
			g.notShared[s.key] = time.Now().Add(notSharedFor)
			g.srcMu.Unlock()
		}
		s.up = nil
		s.abort(Errorf(500, "not shared: %s", why))
		g.leaveSource(s)
		c.startPass(up)
		c.pt.mu.Lock()
		c.pt.aggURL, c.pt.base = dreq.URL, ru.Base()
		c.pt.mu.Unlock()
		c.pt.onAnswer("DESCRIBE", resp, ru.Base(), req.CSeq(), nil)
		return true
	}
	close(s.ready)
	c.joinView(s, req, ru)
	return true
}

// init reads the camera's DESCRIBE answer; it returns why the session
// cannot be shared, or "".
func (s *source) init(resp *Response, reqURL string) string {
	if resp.StatusCode != 200 {
		return fmt.Sprintf("camera answered %d", resp.StatusCode)
	}
	if !isSDP(resp.Header) {
		return "no SDP"
	}
	sdp := ParseSDP(resp.Body)
	if len(sdp.Media) == 0 {
		return "no media"
	}
	if !sdp.IsLive() {
		return "a recording (range " + sdp.Range + ")"
	}
	if len(sdp.Media) > 64 {
		return "too many media"
	}
	s.base = reqURL
	if v := resp.Header.Get("Content-Base"); v != "" {
		s.base = v
	} else if v := resp.Header.Get("Content-Location"); v != "" {
		s.base = v
	}
	s.base = s.up.own(s.base)
	s.aggURL = s.base
	if sdp.Control != "" && sdp.Control != "*" {
		s.aggURL = s.up.own(resolveControl(s.base, sdp.Control))
	}
	for i, m := range sdp.Media {
		if m.BackChannel {
			return "backchannel"
		}
		tr := &srcTrack{idx: i, media: m, control: s.up.own(resolveControl(s.base, m.Control)), ch: 2 * i}
		for _, codec := range m.Codecs {
			if videoCodec(codec) {
				tr.video = true
			}
		}
		s.tracks = append(s.tracks, tr)
	}
	s.describe = resp
	return ""
}

// abort ends a source that never became shared.
func (s *source) abort(err error) {
	s.err = err
	s.dead.Store(true)
	s.g.srcMu.Lock()
	if s.g.sources[s.key] == s {
		delete(s.g.sources, s.key)
	}
	s.g.srcMu.Unlock()
	s.once.Do(func() { s.g.stats.Sources.Add(-1) })
	close(s.ready)
}

// leaveSource drops a connection's reference; the last one ends the
// camera session.
func (g *Gateway) leaveSource(s *source) {
	g.srcMu.Lock()
	s.refs--
	last := s.refs == 0
	if last && g.sources[s.key] == s {
		delete(g.sources, s.key)
	}
	g.srcMu.Unlock()
	if last && s.err == nil {
		s.shutdown()
	}
}

// fail ends a source whose camera connection broke: its viewers are
// disconnected and will reconnect (to a new source).
func (s *source) fail() {
	s.dead.Store(true)
	s.g.srcMu.Lock()
	if s.g.sources[s.key] == s {
		delete(s.g.sources, s.key)
	}
	s.g.srcMu.Unlock()
	s.mu.Lock()
	subs := s.subs
	s.mu.Unlock()
	for _, sub := range subs {
		sub.v.c.closeTransport()
	}
}

// shutdown tears the camera session down.
func (s *source) shutdown() {
	s.dead.Store(true)
	s.mu.Lock()
	s.closed = true
	if s.kaStop != nil {
		close(s.kaStop)
		s.kaStop = nil
	}
	sess := s.session
	s.mu.Unlock()
	s.once.Do(func() { s.g.stats.Sources.Add(-1) })
	if s.up == nil {
		return
	}
	if sess != "" {
		s.up.teardown(s.aggURL, sessionID(sess))
	}
	s.up.close()
}

// onRequest answers what a camera asks of the gateway as its client.
func (s *source) onRequest(req *Request) {
	switch req.Method {
	case "OPTIONS", "GET_PARAMETER", "SET_PARAMETER":
		s.up.answer(req, 200)
	default:
		s.up.answer(req, 501)
	}
}

// ensureSetup sets up every track at the camera, once, over interleaved
// TCP (channels 0-1, 2-3, … in SDP order). All tracks, not just the
// first viewer's: a camera refuses to add tracks to a playing session,
// and later viewers may want the ones the first did not.
//
// The camera round trips are the source's, not the asking viewer's: a
// viewer that leaves mid-SETUP must not end the camera connection the
// others wait on (do's own timeout bounds them).
func (s *source) ensureSetup(ua string) error {
	ctx := context.Background()
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if s.setupDone {
		return s.setupErr
	}
	s.setupDone = true
	var byCh [256]*srcTrack
	var firstRefusal *Response
	okCount := 0
	for _, tr := range s.tracks {
		profile := tr.media.Proto
		if profile == "" || !strings.HasPrefix(profile, "RTP/") {
			profile = "RTP/AVP"
		}
		t := Transport{Spec: Transport{Spec: profile}.Profile() + "/TCP", Params: []Param{{Name: "unicast"}}}
		t.Set("interleaved", fmt.Sprintf("%d-%d", tr.ch, tr.ch+1))
		req := &Request{Method: "SETUP", URL: tr.control, Proto: "RTSP/1.0", Header: Header{{"Transport", t.String()}}}
		if ua != "" {
			req.Header.Add("User-Agent", ua)
		}
		s.mu.Lock()
		if s.session != "" {
			req.Header.Add("Session", sessionID(s.session))
		}
		s.mu.Unlock()
		var resp *Response
		var err error
		udp := s.g.canUDP() && s.g.udpOnlyKnown(s.handle)
		if !udp {
			if resp, err = s.up.do(ctx, req, nil); err != nil {
				s.setupErr = err
				return err
			}
			if resp.StatusCode == 461 && s.g.canUDP() {
				s.g.markUDPOnly(s.handle)
				udp = true
			}
		}
		if udp {
			if resp, err = s.setupUDP(ctx, req, t, tr.ch); err != nil {
				s.setupErr = err
				return err
			}
		}
		if resp.StatusCode != 200 {
			if firstRefusal == nil {
				firstRefusal = resp
			}
			continue
		}
		if ts, err := ParseTransports(resp.Header.Get("Transport")); err == nil {
			tr.camT = ts[0]
			if a, _, ok := tr.camT.Ports("interleaved"); ok && a < 255 {
				tr.ch = a
			}
		}
		if byCh[tr.ch] != nil || byCh[tr.ch+1] != nil {
			continue // the camera put two tracks on one channel: keep the first
		}
		byCh[tr.ch], byCh[tr.ch+1] = tr, tr
		tr.ok = true
		okCount++
		s.mu.Lock()
		if s.session == "" {
			s.session = resp.Header.Get("Session")
			if ss, ok := ParseSession(s.session); ok {
				s.timeout = ss.TimeoutOrDefault()
			}
		}
		s.mu.Unlock()
	}
	s.byCh.Store(&byCh)
	if okCount == 0 {
		status := 502
		if firstRefusal != nil {
			status = firstRefusal.StatusCode
		}
		s.setupErr = Errorf(status, "camera refused SETUP")
		return s.setupErr
	}
	s.startKeepalive()
	return nil
}

// setupUDP sets a track up over UDP to a relay on the camera's LAN
// (camudp.go), whose datagrams arrive as frames on channels ch and ch+1,
// as an interleaved SETUP would have had them.
func (s *source) setupUDP(ctx context.Context, req *Request, tcp Transport, ch int) (*Response, error) {
	relay, err := s.g.dialCameraUDP(ctx, s.principal, s.handle)
	if err != nil {
		return nil, err
	}
	resp, err := s.up.do(ctx, udpSetupRequest(req, tcp, relay), nil)
	if err != nil {
		relay.Close()
		return nil, err
	}
	if resp.StatusCode != 200 {
		relay.Close()
		if resp.StatusCode == 461 {
			s.g.forgetUDPOnly(s.handle)
		}
		return resp, nil
	}
	if a, b, ok := cameraTransport(resp).Ports("server_port"); ok {
		relay.SetCamera(a, b)
	}
	if !s.up.attachUDP(relay, ch) {
		return nil, errCameraGone
	}
	return resp, nil
}

// ensurePlay starts the camera session once. onFirst runs on the camera
// reader goroutine with the camera's answer, before any packet after it:
// the first viewer is answered and subscribed there, so it gets the
// stream from its very first packet.
func (s *source) ensurePlay(rng string, onFirst func(*Response)) (first bool, resp *Response, err error) {
	ctx := context.Background()
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if s.playing {
		return false, s.playResp, nil
	}
	req := &Request{Method: "PLAY", URL: s.aggURL, Proto: "RTSP/1.0", Header: Header{{"User-Agent", userAgent}}}
	s.mu.Lock()
	if s.session != "" {
		req.Header.Add("Session", sessionID(s.session))
	}
	s.mu.Unlock()
	if rng != "" {
		req.Header.Add("Range", rng)
	}
	resp, err = s.up.do(ctx, req, func(r *Response) {
		if r.StatusCode == 200 {
			onFirst(r)
		}
	})
	if err != nil {
		return false, nil, err
	}
	if resp.StatusCode != 200 {
		return false, nil, Errorf(resp.StatusCode, "camera refused PLAY")
	}
	s.playing, s.playResp = true, resp
	return true, resp, nil
}

func (s *source) startKeepalive() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.kaStop != nil {
		return
	}
	stop := make(chan struct{})
	s.kaStop = stop
	every := keepaliveInterval(s.timeout)
	s.g.goFn(func() { s.keepaliveLoop(stop, every) })
}

// keepaliveLoop keeps the shared camera session alive (its viewers'
// keepalives are answered by the gateway and never reach the camera), and
// ends UDP viewers that went silent.
func (s *source) keepaliveLoop(stop chan struct{}, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-s.up.done:
			return
		case <-t.C:
		}
		s.mu.Lock()
		sess := sessionID(s.session)
		timeout := time.Duration(max(s.timeout, DefaultSessionTimeout)) * time.Second
		var silent []*viewer
		for _, sub := range s.subs {
			if sub.v.udp != nil && time.Since(time.Unix(0, sub.v.c.lastInput.Load())) > 2*timeout {
				silent = append(silent, sub.v)
			}
		}
		s.mu.Unlock()
		for _, v := range silent {
			v.c.closeTransport()
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.g.cfg.CameraTimeout)
		err := s.up.keepalive(ctx, s.aggURL, sess)
		cancel()
		if err != nil {
			return
		}
	}
}

// subscribe adds a playing viewer to the packet path.
func (s *source) subscribe(sub *subscription) {
	s.mu.Lock()
	s.subs = append(s.subs, sub)
	s.publishLocked()
	s.mu.Unlock()
	s.g.stats.Viewers.Add(1)
}

func (s *source) unsubscribe(sub *subscription) {
	s.mu.Lock()
	for i, x := range s.subs {
		if x == sub {
			s.subs = append(s.subs[:i:i], s.subs[i+1:]...)
			s.publishLocked()
			s.g.stats.Viewers.Add(-1)
			break
		}
	}
	s.mu.Unlock()
}

func (s *source) publishLocked() {
	snap := append([]*subscription(nil), s.subs...)
	s.snap.Store(&snap)
}

// onFrame is the packet path: one camera packet to every playing viewer.
func (s *source) onFrame(it Item) {
	byCh := s.byCh.Load()
	snap := s.snap.Load()
	if byCh == nil || snap == nil || len(*snap) == 0 {
		return
	}
	tr := byCh[it.Channel]
	if tr == nil {
		return
	}
	rtcp := int(it.Channel) != tr.ch
	key := false
	if !rtcp && tr.video {
		if pt, payload, ok := rtpPayload(it.Payload()); ok {
			key = startsKeyframe(tr.media.Codecs[pt], payload)
		}
	}
	p := newPacket(it.Frame)
	now := time.Now().UnixNano()
	for _, sub := range *snap {
		if st := sub.tracks[tr.idx]; st != nil && !sub.dropped {
			sub.deliver(p, st, rtcp, key, now)
		}
	}
	p.release()
}

// kick starts the writes of every viewer queued to since the last kick;
// it runs when the camera reader has handled all it read.
func (s *source) kick() {
	for i, sub := range s.dirty {
		sub.dirty = false
		sub.v.c.out.kick()
		if sub.udp != nil {
			sub.udp.kick()
		}
		s.dirty[i] = nil
	}
	s.dirty = s.dirty[:0]
}

// deliver queues a packet for one viewer, or skips the viewer ahead.
func (sub *subscription) deliver(p *packet, st *subTrack, rtcp, key bool, now int64) {
	if st.waitKey && !rtcp {
		if !key {
			return
		}
		st.waitKey = false
	}
	v := sub.v
	g := v.c.g
	var r enqueueResult
	if st.tcp {
		ch := st.ch
		if rtcp {
			ch++
		}
		r = v.c.out.enqueue(p, ch, g.cfg.ViewerBacklog)
	} else {
		r = sub.udp.enqueue(p, st.pair, rtcp, g.cfg.ViewerBacklog)
	}
	switch r {
	case queued:
		sub.overSince = 0
		if !sub.dirty {
			sub.dirty = true
			v.src.dirty = append(v.src.dirty, sub)
		}
		return
	case gone:
		return // leaving; its goroutine unsubscribes it
	}
	if sub.overSince == 0 {
		// Over its backlog: the viewer loses what it cannot take and
		// resumes at the next keyframe, a clean picture again.
		sub.overSince = now
		g.stats.Skips.Add(1)
		for _, t := range sub.tracks {
			if t != nil && t.video {
				t.waitKey = true
			}
		}
		return
	}
	if time.Duration(now-sub.overSince) > g.cfg.DropAfter {
		sub.dropped = true
		g.stats.Drops.Add(1)
		g.log.Info("rtsp: dropping a viewer that takes no packets", "client", v.c.remote)
		v.c.closeTransport()
	}
}

// joinView makes the connection a viewer of s and answers its DESCRIBE.
func (c *clientConn) joinView(s *source, req *Request, ru relayURL) {
	c.view = &viewer{c: c, src: s, tracks: map[int]*viewerSetup{}}
	c.mode = modeView
	c.view.describe(req, ru)
}

// handle serves a viewer's request.
func (v *viewer) handle(req *Request, ru relayURL) {
	c := v.c
	if sid := sessionID(req.Header.Get("Session")); sid != "" {
		v.src.mu.Lock()
		own := sessionID(v.src.session)
		v.src.mu.Unlock()
		if own != "" && sid != own {
			c.reply(req, 454, nil)
			return
		}
	}
	switch req.Method {
	case "OPTIONS":
		c.reply(req, 200, Header{{"Public", publicMethods}})
	case "DESCRIBE":
		if ru.Key() != v.src.path {
			// Another path on the same connection: start over.
			v.leave()
			c.mode, c.view = modeNone, nil
			c.start(req, ru)
			return
		}
		v.describe(req, ru)
	case "SETUP":
		v.setup(req, ru)
	case "PLAY":
		v.play(req, ru)
	case "PAUSE":
		if v.sub != nil {
			v.src.unsubscribe(v.sub)
			v.sub = nil
		}
		c.reply(req, 200, v.sessionHeader())
	case "TEARDOWN":
		v.leave()
		c.mode, c.view = modeNone, nil
		c.reply(req, 200, nil)
	case "GET_PARAMETER", "SET_PARAMETER":
		c.reply(req, 200, v.sessionHeader())
	default:
		c.reply(req, 455, Header{{"Allow", "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER"}})
	}
}

func (v *viewer) sessionHeader() Header {
	v.src.mu.Lock()
	defer v.src.mu.Unlock()
	if v.src.session == "" {
		return nil
	}
	// The camera's own Session value, id and timeout untouched: the
	// viewer keeps the session alive at the camera's pace.
	return Header{{"Session", v.src.session}}
}

// describe answers DESCRIBE with the camera's description, its URLs
// pointing at the relay as this viewer reaches it.
func (v *viewer) describe(req *Request, ru relayURL) {
	v.base = ru.Base()
	d := v.src.describe
	out := &Response{Proto: replyProto(req.Proto), StatusCode: 200, Reason: d.Reason, Header: d.Header.Clone(), Body: d.Body}
	for _, h := range []string{"CSeq", "Session", "Connection", "WWW-Authenticate"} {
		out.Header.Del(h)
	}
	if cs := req.CSeq(); cs != "" {
		out.Header = append(Header{{"CSeq", cs}}, out.Header...)
	}
	rewriteResponse(out, v.base)
	v.c.out.write(out.AppendTo(nil))
}

// matchTrack finds the track a SETUP URL names (camera form). Clients
// differ: most use Content-Base plus the control, some append the control
// to the URL they DESCRIBEd, some (VLC for one track) SETUP the base
// itself.
func (s *source) matchTrack(u string) *srcTrack {
	for _, tr := range s.tracks {
		if sameURL(tr.control, u) {
			return tr
		}
	}
	for _, tr := range s.tracks {
		ctl := strings.Trim(tr.media.Control, "/")
		if ctl != "" && !hasScheme(ctl) && !strings.HasPrefix(tr.media.Control, "/") && strings.HasSuffix(strings.TrimSuffix(u, "/"), "/"+ctl) {
			return tr
		}
	}
	if len(s.tracks) == 1 {
		return s.tracks[0]
	}
	return nil
}

func (v *viewer) setup(req *Request, ru relayURL) {
	c, s := v.c, v.src
	tr := s.matchTrack(ru.Camera(s.up.auth))
	if tr == nil {
		c.refuse(req, Errorf(404, "no such track"))
		return
	}
	if v.sub != nil {
		c.refuse(req, Errorf(455, "SETUP while playing a shared session"))
		return
	}
	if err := s.ensureSetup(req.Header.Get("User-Agent")); err != nil {
		c.refuse(req, err)
		return
	}
	if !tr.ok {
		c.refuse(req, Errorf(453, "the camera refused this track"))
		return
	}
	if old := v.tracks[tr.idx]; old != nil {
		if old.tcp {
			v.used[old.ch], v.used[old.ch+1] = false, false
		}
		delete(v.tracks, tr.idx)
	}
	var ts []Transport
	if h := req.Header.Get("Transport"); h != "" {
		var err error
		if ts, err = ParseTransports(h); err != nil {
			c.refuse(req, Errorf(400, "malformed Transport header"))
			return
		}
	} else {
		ts = []Transport{{Spec: "RTP/AVP/TCP", Params: []Param{{Name: "unicast"}}}}
	}
	for _, t := range ts {
		if t.IsMulticast() {
			continue
		}
		var answer Transport
		vs := &viewerSetup{}
		if t.IsTCP() {
			a, _, ok := t.Ports("interleaved")
			if !ok || a > 254 || v.used[a] || v.used[a+1] {
				a = v.freeChannel()
			}
			if a < 0 {
				c.refuse(req, Errorf(453, "no free interleaved channels"))
				return
			}
			v.used[a], v.used[a+1] = true, true
			vs.tcp, vs.ch = true, byte(a)
			answer = Transport{Spec: t.Spec, Params: []Param{{Name: "unicast"}}}
			answer.Set("interleaved", fmt.Sprintf("%d-%d", a, a+1))
			if ssrc, ok := tr.camT.Get("ssrc"); ok {
				answer.Set("ssrc", ssrc)
			}
		} else {
			dst, err := clientUDPDest(t, c.remoteIP)
			if err != nil {
				c.refuse(req, err)
				return
			}
			pair, err := newUDPPair(c.g, c.localIP, dst)
			if err != nil {
				c.refuse(req, Errorf(500, "%v", err))
				return
			}
			pair.onRTCP = func([]byte) { c.touch() } // a viewer's receiver reports: it lives
			pair.start()
			v.pairs = append(v.pairs, pair)
			if v.udp == nil {
				v.udp = newUDPSender(c.g)
			}
			vs.pair = pair
			answer = udpAnswer(t, tr.camT, pair)
		}
		v.tracks[tr.idx] = vs
		h := Header{{"Transport", answer.String()}}
		c.reply(req, 200, append(h, v.sessionHeader()...))
		return
	}
	c.refuse(req, Errorf(461, "multicast cannot cross the tunnel; ask for TCP or unicast UDP"))
}

func (v *viewer) freeChannel() int {
	for ch := 0; ch < 255; ch += 2 {
		if !v.used[ch] && !v.used[ch+1] {
			return ch
		}
	}
	return -1
}

func (v *viewer) play(req *Request, ru relayURL) {
	c, s := v.c, v.src
	if len(v.tracks) == 0 {
		c.refuse(req, Errorf(455, "PLAY before SETUP"))
		return
	}
	if v.sub != nil {
		c.reply(req, 200, v.sessionHeader()) // already playing
		return
	}
	sub := &subscription{v: v, udp: v.udp, tracks: make([]*subTrack, len(s.tracks))}
	for idx, vs := range v.tracks {
		video := s.tracks[idx].video
		sub.tracks[idx] = &subTrack{viewerSetup: *vs, video: video, waitKey: video}
	}
	v.base = ru.Base()
	first, resp, err := s.ensurePlay(req.Header.Get("Range"), func(r *Response) {
		v.replyPlay(req, r, true)
		v.sub = sub
		s.subscribe(sub)
	})
	if err != nil {
		c.refuse(req, err)
		return
	}
	if !first {
		v.replyPlay(req, resp, false)
		v.sub = sub
		s.subscribe(sub)
	}
}

// replyPlay answers a viewer's PLAY. The first viewer gets the camera's
// RTP-Info (it gets the stream from its first packet); later ones join a
// running stream at an unknown packet and get none, which RFC 2326 allows
// and clients handle by taking the first packet's numbers.
func (v *viewer) replyPlay(req *Request, camResp *Response, first bool) {
	h := v.sessionHeader()
	rng := camResp.Header.Get("Range")
	if rng == "" || !first {
		rng = "npt=0.000-"
	}
	h = append(h, Field{"Range", rng})
	if ri := camResp.Header.Get("RTP-Info"); first && ri != "" {
		h = append(h, Field{"RTP-Info", RewriteRTPInfo(ri, func(u string) string { return ToRelay(u, v.base) })})
	}
	v.c.reply(req, 200, h)
}

// leave gives up the viewer's place; the last viewer of a source ends
// the camera session.
func (v *viewer) leave() {
	if v.sub != nil {
		v.src.unsubscribe(v.sub)
		v.sub = nil
	}
	for _, p := range v.pairs {
		p.close()
	}
	v.pairs = nil
	if v.udp != nil {
		v.udp.close()
		v.udp = nil
	}
	v.c.g.leaveSource(v.src)
}

// udpSender sends a UDP viewer's packets from one goroutine, so the
// packet path only queues.
type udpSender struct {
	mu      sync.Mutex
	cond    sync.Cond
	q       []udpItem
	qBytes  int
	closed  bool
	running bool
}

type udpItem struct {
	p    *packet
	pair *udpPair
	rtcp bool
}

func newUDPSender(g *Gateway) *udpSender {
	u := &udpSender{}
	u.cond.L = &u.mu
	g.goFn(u.run)
	return u
}

func (u *udpSender) enqueue(p *packet, pair *udpPair, rtcp bool, limit int) enqueueResult {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return gone
	}
	if u.qBytes > limit {
		return full
	}
	p.ref()
	u.q = append(u.q, udpItem{p, pair, rtcp})
	u.qBytes += len(p.buf)
	return queued
}

func (u *udpSender) kick() {
	u.mu.Lock()
	if len(u.q) > 0 {
		u.cond.Signal()
	}
	u.mu.Unlock()
}

func (u *udpSender) run() {
	var batch []udpItem
	for {
		u.mu.Lock()
		for !u.closed && len(u.q) == 0 {
			u.cond.Wait()
		}
		if u.closed {
			for _, it := range u.q {
				it.p.release()
			}
			u.q = nil
			u.mu.Unlock()
			return
		}
		batch, u.q = u.q, batch[:0]
		u.mu.Unlock()
		n := 0
		for i, it := range batch {
			it.pair.send(it.rtcp, it.p.payload())
			n += len(it.p.buf)
			it.p.release()
			batch[i] = udpItem{}
		}
		u.mu.Lock()
		u.qBytes -= n
		u.mu.Unlock()
	}
}

func (u *udpSender) close() {
	u.mu.Lock()
	u.closed = true
	u.cond.Signal()
	u.mu.Unlock()
}
