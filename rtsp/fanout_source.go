package rtsp

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

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

	// The camera connection: set before ready closes, replaced when a
	// lost camera session is opened again (resume.go).
	upP atomic.Pointer[upstream]

	// Set before ready closes, read-only after.
	describe    *Response // the camera's answer, camera form
	describeURL string    // the camera-form URL it answered
	base        string    // camera-form base URL of the controls
	aggURL      string    // camera-form aggregate control URL
	tracks      []*srcTrack
	byCh        atomic.Pointer[[256]*srcTrack]

	opMu      sync.Mutex // serializes SETUP and PLAY towards the camera
	setupDone bool
	setupErr  error
	playing   bool
	playResp  *Response

	mu      sync.Mutex // guards session, camSession, subs, kaStop, closed
	session string     // the Session header value viewers get: the first camera session's
	// camSession is the Session header value of the camera session that
	// runs now; a resumed session has its own, viewers keep theirs.
	camSession string
	timeout    int
	subs       []*subscription
	snap       atomic.Pointer[[]*subscription] // copy of subs for the packet path
	kaStop     chan struct{}
	closed     bool
	once       sync.Once

	dirty []*subscription // packet path: queued to since the last kick

	// Continuity across camera sessions (continuity.go, resume.go).
	clocks  []trackClock  // by track index; packet path
	resync  atomic.Bool   // drop packets until a keyframe, then remap every track
	played  atomic.Bool   // the camera session played: a loss is held, not failed
	holding atomic.Bool   // the camera session is being opened again
	quit    chan struct{} // closed at shutdown: a hold ends

	// Packets of the camera that arrive after the PLAY went out and
	// before its answer was read: a camera that only does UDP sends them
	// over its relays, which may overtake the answer on the RTSP tunnel.
	// They belong to the first viewer (the camera's RTP-Info names the
	// first of them). Packet path only; awaitPlay says whether to keep.
	awaitPlay atomic.Bool
	early     []earlyPacket
}

// earlyPacket is a packet kept for the first viewer.
type earlyPacket struct {
	p         *packet
	tr        *srcTrack
	rtcp, key bool
}

// maxEarly bounds the packets kept before the PLAY answer: a second of a
// 4 Mbit/s stream, far more than an answer is overtaken by.
const maxEarly = 512

type srcTrack struct {
	idx     int
	media   Media
	control string // camera-form absolute URL
	video   bool   // the gateway knows the codec's keyframes
	ch      int    // camera channels ch (RTP) and ch+1 (RTCP)
	ok      bool   // set up at the camera
	camT    Transport
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
	up := s.cam()
	s.base, s.aggURL = describedURLs(up, resp, reqURL, sdp)
	for i, m := range sdp.Media {
		if m.BackChannel {
			return "backchannel"
		}
		tr := &srcTrack{idx: i, media: m, control: up.own(resolveControl(s.base, m.Control)), ch: 2 * i}
		for _, codec := range m.Codecs {
			if videoCodec(codec) {
				tr.video = true
			}
		}
		s.tracks = append(s.tracks, tr)
	}
	s.describe, s.describeURL = resp, reqURL
	s.clocks = make([]trackClock, len(s.tracks))
	return ""
}

// cam is the camera connection that runs now.
func (s *source) cam() *upstream { return s.upP.Load() }

// describedURLs are the camera-form base and aggregate control URLs of
// a DESCRIBE answer on up.
func describedURLs(up *upstream, resp *Response, reqURL string, sdp SDP) (base, agg string) {
	base = reqURL
	if v := resp.Header.Get("Content-Base"); v != "" {
		base = v
	} else if v := resp.Header.Get("Content-Location"); v != "" {
		base = v
	}
	base = up.own(base)
	agg = base
	if sdp.Control != "" && sdp.Control != "*" {
		agg = up.own(resolveControl(base, sdp.Control))
	}
	return base, agg
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
	if !s.closed && s.quit != nil {
		close(s.quit)
	}
	s.closed = true
	if s.kaStop != nil {
		close(s.kaStop)
		s.kaStop = nil
	}
	sess := s.camSession
	s.mu.Unlock()
	s.once.Do(func() { s.g.stats.Sources.Add(-1) })
	up := s.cam()
	if up == nil {
		return
	}
	if sess != "" {
		up.teardown(s.aggURL, sessionID(sess))
	}
	up.close()
}

// onRequest answers what a camera asks of the gateway as its client.
func (s *source) onRequest(req *Request) {
	switch req.Method {
	case "OPTIONS", "GET_PARAMETER", "SET_PARAMETER":
		s.cam().answer(req, 200)
	default:
		s.cam().answer(req, 501)
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
		t := tr.interleaved()
		req := &Request{Method: "SETUP", URL: tr.control, Proto: "RTSP/1.0", Header: Header{{"Transport", t.String()}}}
		if ua != "" {
			req.Header.Add("User-Agent", ua)
		}
		s.mu.Lock()
		if s.session != "" {
			req.Header.Add("Session", sessionID(s.session))
		}
		s.mu.Unlock()
		resp, err := s.setupOn(ctx, s.cam(), req, t, tr.ch)
		if err != nil {
			s.setupErr = err
			return err
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
			s.camSession = s.session
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
	s.startKeepalive(s.cam())
	return nil
}

// interleaved is the track's transport at the camera: TCP, on its
// channels.
func (tr *srcTrack) interleaved() Transport {
	profile := tr.media.Proto
	if profile == "" || !strings.HasPrefix(profile, "RTP/") {
		profile = "RTP/AVP"
	}
	t := Transport{Spec: Transport{Spec: profile}.Profile() + "/TCP", Params: []Param{{Name: "unicast"}}}
	t.Set("interleaved", fmt.Sprintf("%d-%d", tr.ch, tr.ch+1))
	return t
}

// setupOn sends a track's SETUP (interleaved transport t on channel ch)
// to the camera connection up, over UDP instead for a camera known to
// refuse TCP or that refuses it now.
func (s *source) setupOn(ctx context.Context, up *upstream, req *Request, t Transport, ch int) (*Response, error) {
	if !s.g.canUDP() || !s.g.udpOnlyKnown(s.handle) {
		resp, err := up.do(ctx, req, nil)
		if err != nil || resp.StatusCode != 461 || !s.g.canUDP() {
			return resp, err
		}
		s.g.markUDPOnly(s.handle)
	}
	return s.setupUDP(ctx, up, req, t, ch)
}

// setupUDP sets a track up over UDP to a relay on the camera's LAN
// (camudp.go), whose datagrams arrive as frames on channels ch and ch+1,
// as an interleaved SETUP would have had them.
func (s *source) setupUDP(ctx context.Context, up *upstream, req *Request, tcp Transport, ch int) (*Response, error) {
	relay, err := s.g.dialCameraUDP(ctx, s.principal, s.handle)
	if err != nil {
		return nil, err
	}
	resp, err := up.do(ctx, udpSetupRequest(req, tcp, relay), nil)
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
	if !up.attachUDP(relay, ch) {
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
	s.awaitPlay.Store(true)
	resp, err = s.cam().do(ctx, req, func(r *Response) {
		if r.StatusCode == 200 {
			onFirst(r)
		}
		s.awaitPlay.Store(false)
		s.dropEarly()
	})
	if err != nil {
		s.awaitPlay.Store(false)
		return false, nil, err
	}
	if resp.StatusCode != 200 {
		return false, nil, Errorf(resp.StatusCode, "camera refused PLAY")
	}
	s.playing, s.playResp = true, resp
	s.played.Store(true)
	return true, resp, nil
}

// startKeepalive keeps the camera session on up alive while up lasts.
func (s *source) startKeepalive(up *upstream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.kaStop != nil {
		return
	}
	stop := make(chan struct{})
	s.kaStop = stop
	every := keepaliveInterval(s.timeout)
	s.g.goFn(func() { s.keepaliveLoop(up, stop, every) })
}

// keepaliveLoop keeps the shared camera session alive (its viewers'
// keepalives are answered by the gateway and never reach the camera), and
// ends UDP viewers that went silent.
func (s *source) keepaliveLoop(up *upstream, stop chan struct{}, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-up.done:
			return
		case <-t.C:
		}
		s.mu.Lock()
		sess := sessionID(s.camSession)
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
		err := up.keepalive(ctx, s.aggURL, sess)
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
	if byCh == nil {
		return
	}
	snap := s.snap.Load()
	early := s.awaitPlay.Load() && len(s.early) < maxEarly
	if (snap == nil || len(*snap) == 0) && !early {
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
	now := time.Now().UnixNano()
	p := newPacket(it.Frame)
	if !s.continuity(tr, rtcp, key, p.payload(), now) {
		p.release()
		return
	}
	if early && (snap == nil || len(*snap) == 0) {
		s.early = append(s.early, earlyPacket{p: p, tr: tr, rtcp: rtcp, key: key})
		return
	}
	for _, sub := range *snap {
		if st := sub.tracks[tr.idx]; st != nil && !sub.dropped {
			sub.deliver(p, st, rtcp, key, now)
		}
	}
	p.release()
}

// replayEarly gives the first viewer the packets that came before the
// camera's PLAY answer; it runs on the packet path, right after the
// viewer subscribed.
func (s *source) replayEarly(sub *subscription) {
	now := time.Now().UnixNano()
	for _, e := range s.early {
		if st := sub.tracks[e.tr.idx]; st != nil && !sub.dropped {
			sub.deliver(e.p, st, e.rtcp, e.key, now)
		}
	}
	s.dropEarly()
}

func (s *source) dropEarly() {
	for i, e := range s.early {
		e.p.release()
		s.early[i] = earlyPacket{}
	}
	s.early = s.early[:0]
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
