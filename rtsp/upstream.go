package rtsp

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nanodems/connector/internal/httpauth"
)

// userAgent names the gateway in the requests it makes itself (shared
// sessions, keepalives, teardowns of vanished clients).
const userAgent = "nanodems-rtsp-gateway"

// upstream is one RTSP connection to a camera, through a tunnel. It
// numbers requests itself (CSeq), matches answers to them, answers the
// camera's challenges with the stored login, and hands interleaved frames
// and camera-initiated requests to its owner: a pass-through client
// connection or a shared source.
type upstream struct {
	g      *Gateway
	nc     net.Conn
	target Target
	auth   string           // camera authority "host:port", for camera-form URLs
	creds  *httpauth.Client // nil: no stored login, challenges go to the client
	rd     *Reader

	wmu  sync.Mutex // one writer at a time; also orders pending
	cseq int
	wbuf []byte

	pmu     sync.Mutex
	pending []*call

	h atomic.Pointer[upHandlers]
	// hmu serialises the handlers: the camera reader runs them, and so do
	// the readers of the camera's UDP relays (camudp.go).
	hmu  sync.Mutex
	done chan struct{}
	once sync.Once
	err  error

	keepaliveOptions atomic.Bool // the camera refused GET_PARAMETER

	udpMu     sync.Mutex // guards udpRelays and writes of udpCh
	udpRelays []*camUDP
	udpCh     [256]atomic.Pointer[camUDP] // channels the camera takes over UDP
}

// upHandlers are the owner's callbacks; they run on the upstream's reader
// goroutine, in stream order, or on a UDP relay's reader (frames and idle
// only), never two at once (hmu).
type upHandlers struct {
	frame   func(it Item)      // interleaved frame; it.Frame aliases the read buffer
	request func(req *Request) // request from the camera
	closed  func(err error)    // the camera connection ended
	// idle runs when everything the camera sent so far is handled,
	// before the reader blocks: where batched writes go out.
	idle func()
}

// call is one request in flight.
type call struct {
	req *Request
	// onResp runs on the reader goroutine before any later byte of the
	// camera is handled: a pass-through client gets the answer before the
	// first RTP packet that follows it, as the camera sent them.
	onResp func(*Response)
	done   chan *Response
	cseq   int
	tries  int // sent again after a challenge
}

// dialUpstream opens a camera connection for handle h.
func (g *Gateway) dialUpstream(ctx context.Context, p Principal, h string) (*upstream, error) {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.CameraTimeout)
	defer cancel()
	nc, target, err := g.cfg.Backend.Dial(ctx, p, h)
	if err != nil {
		return nil, err
	}
	up := &upstream{g: g, nc: nc, target: target, auth: Authority(target.Host, target.Port), done: make(chan struct{})}
	if user, pass, ok := g.cfg.Backend.Credentials(ctx, h); ok {
		up.creds = &httpauth.Client{Username: user, Password: pass}
	}
	up.rd = NewReader(nc, 64<<10, g.cfg.Limits)
	up.rd.Lenient = true
	up.h.Store(&upHandlers{})
	g.stats.CameraSessions.Add(1)
	g.goFn(up.readLoop)
	return up, nil
}

// setHandlers replaces the owner's callbacks.
func (up *upstream) setHandlers(h *upHandlers) { up.h.Store(h) }

// own rewrites an absolute URL of the camera to name the address the
// tunnel reached: cameras name themselves by addresses the relay does not
// use (another interface, a NAT's outside), and requests through the
// gateway always carry the tunnel's, shared session or not.
func (up *upstream) own(u string) string {
	if !hasScheme(u) {
		return u
	}
	return ToRelay(u, "rtsp://"+up.auth)
}

// cameraURL maps a relay URL to this camera; "*" stays.
func (up *upstream) cameraURL(ru relayURL) string { return ru.Camera(up.auth) }

// do sends req and waits for its answer. onResp, if set, sees the answer
// first, on the reader goroutine.
func (up *upstream) do(ctx context.Context, req *Request, onResp func(*Response)) (*Response, error) {
	c := &call{req: req, onResp: onResp, done: make(chan *Response, 1)}
	if err := up.send(c); err != nil {
		return nil, err
	}
	t := time.NewTimer(up.g.cfg.CameraTimeout)
	defer t.Stop()
	select {
	case r := <-c.done:
		return r, nil
	case <-up.done:
		// The answer may have come just before the close.
		select {
		case r := <-c.done:
			return r, nil
		default:
		}
		return nil, errCameraGone
	case <-t.C:
		// The connection is in an unknown state: a late answer would
		// be taken for the next request's. End it.
		up.fail(errCameraTimeout)
		return nil, errCameraTimeout
	case <-ctx.Done():
		up.fail(ctx.Err())
		return nil, ctx.Err()
	}
}

// send numbers, signs and writes a request, registering it first so its
// answer cannot overtake the registration.
func (up *upstream) send(c *call) error {
	up.wmu.Lock()
	defer up.wmu.Unlock()
	select {
	case <-up.done:
		return errCameraGone
	default:
	}
	up.cseq++
	c.cseq = up.cseq
	req := c.req
	req.Header.Set("CSeq", strconv.Itoa(c.cseq))
	if up.creds != nil {
		// The gateway answers for this camera: a client's own
		// Authorization would sign the relay's URL, which strict cameras
		// refuse, and the operator is not meant to know the login anyway.
		req.Header.Del("Authorization")
		if up.creds.HasChallenge() {
			body := req.Body
			if body == nil {
				body = []byte{}
			}
			// Digest signs the request line's URL: the camera's own.
			if a, err := up.creds.Authorization(req.Method, req.URL, body); err == nil {
				req.Header.Set("Authorization", a)
			}
		}
	}
	up.pmu.Lock()
	up.pending = append(up.pending, c)
	up.pmu.Unlock()
	up.wbuf = req.AppendTo(up.wbuf[:0])
	return up.writeLocked(up.wbuf)
}

// writeRaw writes bytes from the client (interleaved frames, answers to
// the camera's requests) between requests.
func (up *upstream) writeRaw(b []byte) error {
	up.wmu.Lock()
	defer up.wmu.Unlock()
	return up.writeLocked(b)
}

func (up *upstream) writeLocked(b []byte) error {
	up.nc.SetWriteDeadline(time.Now().Add(up.g.cfg.CameraTimeout))
	if _, err := up.nc.Write(b); err != nil {
		up.fail(err)
		return errCameraGone
	}
	return nil
}

func (up *upstream) readLoop() {
	for {
		it, err := up.rd.Next()
		if err != nil {
			up.fail(err)
			return
		}
		up.hmu.Lock()
		h := up.h.Load()
		switch it.Kind {
		case KindFrame:
			if h.frame != nil {
				h.frame(it)
			}
		case KindResponse:
			up.onResponse(it.Resp)
		case KindRequest:
			if h.request != nil {
				h.request(it.Req)
			} else {
				up.answer(it.Req, 501)
			}
		}
		if h.idle != nil && !up.rd.Pending() {
			h.idle()
		}
		up.hmu.Unlock()
	}
}

// answer answers a request of the camera.
func (up *upstream) answer(req *Request, status int) {
	resp := &Response{Proto: req.Proto, StatusCode: status, Header: Header{{"CSeq", req.CSeq()}}}
	up.writeRaw(resp.AppendTo(nil))
}

func (up *upstream) onResponse(resp *Response) {
	cs := resp.Header.Get("CSeq")
	n, err := strconv.Atoi(strings.TrimSpace(cs))
	up.pmu.Lock()
	var c *call
	for i, p := range up.pending {
		if (err == nil && p.cseq == n) || (cs == "" && i == 0) {
			c = p
			up.pending = append(up.pending[:i], up.pending[i+1:]...)
			break
		}
	}
	if c == nil && len(up.pending) == 1 {
		// Some firmware echoes a wrong CSeq; with one request in flight
		// there is no doubt which it answers.
		c, up.pending = up.pending[0], up.pending[:0]
	}
	up.pmu.Unlock()
	if c == nil {
		up.g.log.Debug("rtsp: answer to no request from camera", "cseq", cs, "status", resp.StatusCode)
		return
	}
	if resp.StatusCode == 401 && up.creds != nil {
		ch, ok := challengeOf(resp)
		if ok && (c.tries == 0 || (ch.Stale && c.tries < 3)) {
			// Once per request, or again when the camera only says the
			// nonce went stale: a wrong password cannot loop.
			up.creds.SetChallenge(ch)
			c.tries++
			if up.send(c) == nil {
				return
			}
		}
		// The stored login did not do: the client must not be asked for
		// a password it is not meant to know, and gets the relay's answer,
		// with nothing of the camera's (its challenges, its Server header
		// naming the firmware, its body).
		resp = &Response{Proto: resp.Proto, StatusCode: 401, Header: Header{
			{"CSeq", resp.Header.Get("CSeq")},
			{"Server", userAgent},
			{"X-Nanodems-Error", "camera refused the stored credentials"},
		}}
	}
	if c.onResp != nil {
		c.onResp(resp)
	}
	c.done <- resp
}

func challengeOf(resp *Response) (httpauth.Challenge, bool) {
	h := http.Header{}
	for _, v := range resp.Header.Values("WWW-Authenticate") {
		h.Add("WWW-Authenticate", v)
	}
	return httpauth.ChallengeFromResponse(h)
}

// fail ends the connection once.
func (up *upstream) fail(err error) {
	up.once.Do(func() {
		up.err = err
		close(up.done)
		up.nc.Close()
		up.closeUDP()
		up.g.stats.CameraSessions.Add(-1)
		if h := up.h.Load(); h.closed != nil {
			h.closed(err)
		}
	})
}

func (up *upstream) close() { up.fail(net.ErrClosed) }

func (up *upstream) isClosed() bool {
	select {
	case <-up.done:
		return true
	default:
		return false
	}
}

// keepalive keeps a camera session alive on behalf of a client that does
// not (a transport the gateway converted, a shared session). It uses
// GET_PARAMETER, the method RFC 2326 §10.8 suggests, and falls back to
// OPTIONS for cameras that refuse it; either resets the session timer of
// every camera seen so far.
func (up *upstream) keepalive(ctx context.Context, url, session string) error {
	m := "GET_PARAMETER"
	if up.keepaliveOptions.Load() {
		m = "OPTIONS"
	}
	req := &Request{Method: m, URL: url, Proto: "RTSP/1.0", Header: Header{{"User-Agent", userAgent}}}
	if session != "" {
		req.Header.Add("Session", session)
	}
	resp, err := up.do(ctx, req, nil)
	if err != nil {
		return err
	}
	if m == "GET_PARAMETER" && resp.StatusCode >= 400 {
		up.keepaliveOptions.Store(true)
		if resp.StatusCode != 454 {
			return up.keepalive(ctx, url, session)
		}
	}
	return nil
}

// teardown ends a camera session, briefly waiting for the answer: the
// client that owned it is gone, and the camera should know now rather
// than at its session timeout.
func (up *upstream) teardown(url, session string) {
	if up.isClosed() || url == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req := &Request{Method: "TEARDOWN", URL: url, Proto: "RTSP/1.0", Header: Header{{"User-Agent", userAgent}}}
	if session != "" {
		req.Header.Add("Session", session)
	}
	up.do(ctx, req, nil)
}

// sessionID is the id part of a Session header value.
func sessionID(v string) string {
	id, _, _ := strings.Cut(v, ";")
	return strings.TrimSpace(id)
}
