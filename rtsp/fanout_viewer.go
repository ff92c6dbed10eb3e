package rtsp

import (
	"fmt"
	"strings"
)

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
	tr := s.matchTrack(ru.Camera(s.cam().auth))
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
		// The first viewer takes the stream from the camera's first
		// packet, the one the camera's RTP-Info names: no wait for a
		// keyframe, or RTP-Info would name packets it never gets.
		for _, st := range sub.tracks {
			if st != nil {
				st.waitKey = false
			}
		}
		v.replyPlay(req, r, true)
		v.sub = sub
		s.subscribe(sub)
		s.replayEarly(sub)
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
// RTP-Info, which names the first packet it gets (it gets every packet
// from the camera's first); later ones join a running stream at the next
// keyframe, a packet not known yet, and get none, which RFC 2326 allows
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
