package rtsp

import (
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
		s = &source{g: g, key: key, path: ru.Key(), principal: c.principal, handle: c.handle, ready: make(chan struct{}), quit: make(chan struct{})}
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
	s.upP.Store(up)
	s.attach(up)
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
		s.upP.Store(nil)
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
