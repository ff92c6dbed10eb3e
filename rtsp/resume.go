package rtsp

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Resuming a shared camera session. A VMS records all day through the
// gateway; an agent restart (back in 0.4-2 s), a lost relay-agent session
// or a camera reboot must not end its recordings, or a recorder that
// retries only on errors stops for good (ffmpeg exits 0 at an EOF). So
// when a played camera connection ends, the source holds its viewers'
// RTSP sessions open (they see no packets, their keepalives are answered
// as before) and opens the camera session again through the same Dial,
// retrying with a short backoff while the relay answers "agent offline".
// The viewers resume at the new session's first keyframe, their stream
// continuous (continuity.go). If the camera is not back within
// Config.ResumeFor, every viewer gets an RTCP BYE per track and a close.
// Nothing is queued while holding: there are no packets to queue, and
// those of the new session before its keyframe are dropped.
//
// Only shared sessions resume: a pass-through session is the client's
// own (its login, its seek position in a recording), which the gateway
// cannot replay for it.

// Bounds of the retry backoff: the relay answers "agent offline" at
// once until the agent is back, and the agent's reconnect takes 0.4-2 s,
// so 100 ms doubling to 500 ms adds at most half a second to the gap.
const (
	resumeBackoffMin = 100 * time.Millisecond
	resumeBackoffMax = 500 * time.Millisecond
)

var (
	errStreamChanged = &Error{Status: 502, Reason: "the camera's stream changed (other media or codecs)"}
	errSourceClosed  = &Error{Status: 502, Reason: "shared session ended"}
	errHandleRefused = errors.New("the relay refuses the handle")
)

// attach makes s the owner of camera connection up.
func (s *source) attach(up *upstream) {
	up.setHandlers(&upHandlers{frame: s.onFrame, request: s.onRequest, idle: s.kick, closed: func(err error) { s.lost(up, err) }})
}

// detach takes s off up, waiting out a handler that runs: after it, up's
// readers no longer reach the packet path.
func detach(up *upstream) {
	up.setHandlers(&upHandlers{})
	up.hmu.Lock()
	//lint:ignore SA2001 an empty critical section: it waits for the running handler
	up.hmu.Unlock()
}

// lost runs when camera connection up ended. It may run on up's reader
// with up.hmu held, so the hold runs on its own goroutine.
func (s *source) lost(up *upstream, err error) {
	if s.cam() != up {
		return
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return // torn down: the viewers are gone
	}
	if s.g.cfg.ResumeFor < 0 || s.g.closed.Load() || !s.played.Load() {
		s.fail()
		return
	}
	if !s.holding.CompareAndSwap(false, true) {
		return // the hold that opened up is still running and sees it closed
	}
	s.g.goFn(func() { s.hold(up, err) })
}

// hold opens the camera session again, or gives up at ResumeFor.
func (s *source) hold(old *upstream, why error) {
	detach(old)
	start := time.Now()
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(s.g.cfg.ResumeFor))
	defer cancel()
	s.g.goFn(func() {
		select {
		case <-s.quit:
			cancel()
		case <-ctx.Done():
		}
	})
	s.g.log.Info("rtsp: camera session lost; holding its viewers", "handle", s.handle, "path", s.path, "err", why, "for", s.g.cfg.ResumeFor)
	backoff := resumeBackoffMin
	for attempt := 1; ; attempt++ {
		up, err := s.reopen(ctx)
		if err == nil {
			s.g.stats.Resumes.Add(1)
			s.g.log.Info("rtsp: camera session resumed", "handle", s.handle, "path", s.path, "after", time.Since(start).Round(time.Millisecond), "attempts", attempt)
			s.holding.Store(false)
			if up.isClosed() {
				s.lost(up, up.err) // lost again before the hold ended
			}
			return
		}
		if ctx.Err() != nil || final(err) {
			select {
			case <-s.quit:
				return // torn down meanwhile
			default:
			}
			s.giveUp(err, time.Since(start))
			return
		}
		s.g.log.Debug("rtsp: camera not back yet", "handle", s.handle, "attempt", attempt, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		backoff = min(2*backoff, resumeBackoffMax)
	}
}

// final reports whether a failed reopen is not worth retrying: the
// stream changed, the source ended, or the backend refused the handle
// itself (revoked, deleted, another tenant's now), which a retry would
// only keep playing for ResumeFor. A camera's own refusal is retried:
// a camera or media server that is starting answers 404 or 503 for a
// while.
func final(err error) bool {
	return errors.Is(err, errStreamChanged) || errors.Is(err, errSourceClosed) || errors.Is(err, errHandleRefused)
}

// reopen dials the camera again and plays the same stream on the new
// connection, which becomes the source's.
func (s *source) reopen(ctx context.Context) (*upstream, error) {
	up, err := s.g.dialUpstream(ctx, s.principal, s.handle)
	if err != nil {
		switch statusOf(err) {
		case 401, 403, 404:
			return nil, fmt.Errorf("%w: %w", errHandleRefused, err)
		}
		return nil, err
	}
	if err := s.replay(ctx, up); err != nil {
		detach(up)
		up.close()
		return nil, err
	}
	return up, nil
}

// replay runs DESCRIBE, SETUP of the tracks set up before (on the same
// channels) and PLAY on up.
func (s *source) replay(ctx context.Context, up *upstream) error {
	dreq := &Request{Method: "DESCRIBE", URL: up.own(s.describeURL), Proto: "RTSP/1.0", Header: Header{{"Accept", "application/sdp"}, {"User-Agent", userAgent}}}
	resp, err := up.do(ctx, dreq, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return Errorf(resp.StatusCode, "camera answered DESCRIBE with %d", resp.StatusCode)
	}
	sdp := ParseSDP(resp.Body)
	if !sameMedia(s.tracks, sdp.Media) {
		return errStreamChanged
	}
	base, agg := describedURLs(up, resp, dreq.URL, sdp)
	sess := ""
	for _, tr := range s.tracks {
		if !tr.ok {
			continue
		}
		t := tr.interleaved()
		req := &Request{Method: "SETUP", URL: up.own(resolveControl(base, sdp.Media[tr.idx].Control)), Proto: "RTSP/1.0", Header: Header{{"Transport", t.String()}, {"User-Agent", userAgent}}}
		if sess != "" {
			req.Header.Add("Session", sessionID(sess))
		}
		resp, err := s.setupOn(ctx, up, req, t, tr.ch)
		if err != nil {
			return err
		}
		if resp.StatusCode != 200 {
			return Errorf(resp.StatusCode, "camera refused SETUP of track %d", tr.idx)
		}
		if ts, err := ParseTransports(resp.Header.Get("Transport")); err == nil {
			if a, _, ok := ts[0].Ports("interleaved"); ok && a != tr.ch {
				return Errorf(502, "camera moved track %d from channel %d to %d", tr.idx, tr.ch, a)
			}
		}
		if sess == "" {
			sess = resp.Header.Get("Session")
		}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errSourceClosed
	}
	s.upP.Store(up)
	s.camSession = sess
	if ss, ok := ParseSession(sess); ok {
		s.timeout = ss.TimeoutOrDefault()
	}
	s.kaStop = nil // the old loop ended with the old connection
	s.mu.Unlock()
	s.resync.Store(true)
	s.attach(up)
	preq := &Request{Method: "PLAY", URL: agg, Proto: "RTSP/1.0", Header: Header{{"User-Agent", userAgent}}}
	if sess != "" {
		preq.Header.Add("Session", sessionID(sess))
	}
	if resp, err = up.do(ctx, preq, nil); err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return Errorf(resp.StatusCode, "camera refused PLAY")
	}
	s.startKeepalive(up)
	return nil
}

// sameMedia reports whether a camera's description has the media and
// codecs the source's tracks were set up with: viewers were told those,
// and a player cannot take another stream under the same session.
func sameMedia(tracks []*srcTrack, media []Media) bool {
	if len(tracks) != len(media) {
		return false
	}
	for i, tr := range tracks {
		a, b := tr.media.Codecs, media[i].Codecs
		if len(a) != len(b) {
			return false
		}
		for pt, name := range a {
			if b[pt] != name {
				return false
			}
		}
	}
	return true
}

// giveUp ends a held source: each viewer gets a BYE on every track it
// plays, then its connection closes.
func (s *source) giveUp(why error, after time.Duration) {
	s.mu.Lock()
	subs := append([]*subscription(nil), s.subs...)
	s.mu.Unlock()
	for _, sub := range subs {
		s.bye(sub)
	}
	s.g.stats.GiveUps.Add(1)
	s.g.log.Warn("rtsp: camera did not come back; ending its viewers", "handle", s.handle, "path", s.path, "after", after.Round(time.Millisecond), "viewers", len(subs), "err", why)
	s.fail()
}

// bye queues an RTCP BYE on each of a viewer's tracks, before its
// close: interleaved on the track's RTCP channel, or to its RTCP port.
func (s *source) bye(sub *subscription) {
	out := sub.v.c.out
	kick := false
	for idx, st := range sub.tracks {
		if st == nil {
			continue
		}
		b := rtcpBye(s.clocks[idx].ssrc.Load())
		if !st.tcp {
			st.pair.send(true, b)
			continue
		}
		p := newPacket(append(AppendFrameHeader(make([]byte, 0, FrameHeaderLen+len(b)), st.ch+1, len(b)), b...))
		if out.enqueue(p, st.ch+1, s.g.cfg.ViewerBacklog+len(p.buf)) == queued {
			kick = true
		}
		p.release()
	}
	if kick {
		out.kick()
	}
}

// continuity prepares a packet for the viewers (continuity.go); false:
// drop it. After a resume, everything up to the first keyframe is
// dropped (for every track, so audio and video resume together), and
// each track's numbering continues from its first packet after it.
func (s *source) continuity(tr *srcTrack, rtcp, key bool, b []byte, now int64) bool {
	if s.resync.Load() {
		if rtcp || (!key || !tr.video) && s.hasVideo() {
			return false
		}
		s.resync.Store(false)
		for i := range s.clocks {
			s.clocks[i].remap = true
		}
	}
	tc := &s.clocks[tr.idx]
	if rtcp {
		return tc.rtcp(b)
	}
	tc.rtp(b, now, tr)
	return true
}

// hasVideo says whether a track the camera set up is video with known
// keyframes.
func (s *source) hasVideo() bool {
	for _, tr := range s.tracks {
		if tr.ok && tr.video {
			return true
		}
	}
	return false
}

// clock is the RTP clock rate of payload type pt: the description's, or
// the usual one of the medium (90 kHz video, 8 kHz audio).
func (tr *srcTrack) clock(pt int) int {
	if r := tr.media.Clocks[pt]; r > 0 {
		return r
	}
	if tr.video || tr.media.Type == "video" {
		return 90000
	}
	return 8000
}
