package rtsp

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// publicMethods is what the gateway itself answers OPTIONS with before a
// connection is tied to a camera session.
const publicMethods = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER, ANNOUNCE, RECORD"

type connMode int

const (
	modeNone connMode = iota // authorized or not, no camera session yet
	modePass                 // the client drives its own camera connection
	modeView                 // the client views a shared camera session
)

// clientConn is one logical client connection: a TCP connection, or the
// GET/POST pair of an HTTP tunnel. Items from the client are handled one
// at a time, in order, by whichever goroutine the listener gives it (the
// reader goroutine, or a worker that exists while items are queued).
type clientConn struct {
	g        *Gateway
	out      output
	remote   string
	remoteIP net.IP
	localIP  net.IP
	// closeTransport closes the client's socket(s); the listener then
	// delivers the end (end or the reader returning).
	closeTransport func()
	// attachPost ties a POST half to an HTTP tunnel's connection (nil
	// for plain RTSP connections); closeTransport closes it too.
	attachPost func(io.Closer)

	ctx    context.Context
	cancel context.CancelFunc

	// worker queue (event-loop listener)
	qmu     sync.Mutex
	q       []Item
	qBytes  int
	running bool
	ended   bool

	// owned by the handling goroutine
	authorized atomic.Bool
	handle     string
	principal  Principal
	mode       connMode
	pt         *passthrough
	view       *viewer

	lastInput atomic.Int64 // unix nanos of the last request or RTCP from the client
	idle      *time.Timer
	finished  atomic.Bool
	refused   int // authorizations refused on this connection
	// viaDigest: authorized by a Digest login (DigestBackend), whose
	// Authorization headers the gateway removes from every request.
	viaDigest bool
	// unwatch releases the connection from the backend that holds it
	// for revocation (HoldingBackend).
	unwatch atomic.Pointer[func()]
}

// maxRefused is how many refused authorizations a connection gets before
// it is closed: a player retries once or twice, a scanner forever.
const maxRefused = 3

func newClientConn(g *Gateway, out output, remote, local net.Addr, closeTransport func()) *clientConn {
	c := &clientConn{g: g, out: out, remote: remote.String()}
	if a, ok := remote.(*net.TCPAddr); ok {
		c.remoteIP = a.IP
	}
	if a, ok := local.(*net.TCPAddr); ok {
		c.localIP = a.IP
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.closeTransport = func() {
		// Closing from the gateway's side (a drop, Close) also abandons a
		// request in flight rather than waiting out the camera's answer.
		// A peer's own close does not come here: what it sent before
		// still goes to the camera.
		c.cancel()
		closeTransport()
	}
	c.touch()
	// A peer that does not complete an authorized request in time is
	// cut off: unauthenticated connections must not pile up.
	c.idle = time.AfterFunc(g.cfg.IdleTimeout, func() {
		if !c.authorized.Load() {
			c.closeTransport()
		}
	})
	g.track(c, true)
	g.stats.Conns.Add(1)
	return c
}

func (c *clientConn) touch() { c.lastInput.Store(time.Now().UnixNano()) }

// maxQueued bounds what a client may have queued for the worker of the
// event-loop listener: gnet reads whatever arrives, so this is where a
// client that sends faster than its camera takes (RECORD, a flood) is
// stopped, by closing it.
const maxQueued = 4 << 20

// submit queues an item for the worker (event-loop listener). Frames must
// already be copied out of the event loop's buffer.
func (c *clientConn) submit(it Item) bool {
	c.qmu.Lock()
	if c.ended {
		c.qmu.Unlock()
		return false
	}
	n := len(it.Frame) + 256
	if c.qBytes+n > maxQueued {
		c.qmu.Unlock()
		c.g.log.Warn("rtsp: client sends faster than its camera takes; closing", "client", c.remote)
		c.closeTransport()
		return false
	}
	c.q = append(c.q, it)
	c.qBytes += n
	if !c.running {
		c.running = true
		c.g.goFn(c.work)
	}
	c.qmu.Unlock()
	return true
}

// end queues the end of the connection behind the items already queued,
// so a TEARDOWN that arrived just before the close is still forwarded.
func (c *clientConn) end() {
	c.qmu.Lock()
	if c.ended {
		c.qmu.Unlock()
		return
	}
	c.ended = true
	if !c.running {
		c.running = true
		c.g.goFn(c.work)
	}
	c.qmu.Unlock()
}

func (c *clientConn) work() {
	for {
		c.qmu.Lock()
		if len(c.q) == 0 {
			if c.ended {
				c.qmu.Unlock()
				c.shutdown()
				return
			}
			c.running = false
			c.qmu.Unlock()
			return
		}
		it := c.q[0]
		c.q[0] = Item{}
		c.q = c.q[1:]
		c.qBytes -= len(it.Frame) + 256
		c.qmu.Unlock()
		c.handleItem(it)
	}
}

// handleItem handles one item from the client.
func (c *clientConn) handleItem(it Item) {
	if c.finished.Load() {
		return
	}
	switch it.Kind {
	case KindRequest:
		c.touch()
		c.onRequest(it.Req)
	case KindResponse:
		// The client answers a request the camera sent it.
		if c.mode == modePass {
			c.pt.up.writeRaw(it.Resp.AppendTo(nil))
		}
	case KindFrame:
		switch c.mode {
		case modePass:
			c.pt.clientFrame(it)
		case modeView:
			c.touch() // RTCP receiver reports of a viewer: it is alive
		}
	}
}

func (c *clientConn) onRequest(req *Request) {
	if req.URL == "*" {
		switch {
		case c.mode == modePass:
			c.pt.forward(req, relayURL{})
		case req.Method == "OPTIONS":
			c.reply(req, 200, Header{{"Public", publicMethods}})
		default:
			c.reply(req, 400, nil)
		}
		return
	}
	ru, err := parseRelayURL(req.URL)
	if err != nil {
		c.refuse(req, Errorf(404, "no handle in URL: use rtsp://relay:9554/{handle}/path"))
		return
	}
	if !c.authorized.Load() {
		if !c.authorize(req, ru) {
			return
		}
	} else if ru.Handle != c.handle {
		// One connection, one handle: later requests (SETUP URLs built
		// from Content-Base carry no grant) are authorized by the
		// connection, so it must not reach further than its grant did.
		if ru.Grant != "" {
			if _, err := c.g.cfg.Backend.Authorize(c.ctx, ru.Handle, ru.Grant); err != nil {
				c.refuse(req, err)
				return
			}
			c.refuse(req, Errorf(403, "this connection is bound to another handle; open a new one"))
			return
		}
		c.refuse(req, Errorf(401, "this connection is not authorized for that handle"))
		return
	}
	if c.viaDigest {
		// The client's Digest answers the gateway's challenge; it is
		// nothing the camera should see (a stored login answers the
		// camera's), and its presence would keep the stream from being
		// shared.
		req.Header.Del("Authorization")
	}
	switch c.mode {
	case modePass:
		c.pt.forward(req, ru)
	case modeView:
		c.view.handle(req, ru)
	default:
		c.start(req, ru)
	}
}

// authorize authorizes the connection by the first request that carries a
// grant or, with a DigestBackend, a Digest login; it answers the request
// itself and returns false when it does not.
func (c *clientConn) authorize(req *Request, ru relayURL) bool {
	var p Principal
	var err error
	db, digest := c.g.cfg.Backend.(DigestBackend)
	switch {
	case ru.Grant != "":
		p, err = c.g.cfg.Backend.Authorize(c.ctx, ru.Handle, ru.Grant)
	case digest:
		var stale bool
		p, stale, err = c.checkDigest(req, ru, db)
		if err == errChallenge {
			// Asking for a login is no refusal: a player's first request
			// never carries one.
			c.challenge(req, err, stale)
			return false
		}
	default:
		c.refuse(req, Errorf(401, "missing grant: use the URL the relay minted (…?nd_grant=…)"))
		return false
	}
	if err != nil {
		if digest && ru.Grant == "" && statusOf(err) == 401 {
			c.challenge(req, err, false)
		} else {
			c.refuse(req, err)
		}
		if c.refused++; c.refused >= maxRefused {
			c.closeTransport()
		}
		return false
	}
	c.handle, c.principal = ru.Handle, p
	c.viaDigest = ru.Grant == ""
	c.authorized.Store(true)
	c.idle.Stop()
	if hb, ok := c.g.cfg.Backend.(HoldingBackend); ok {
		release := hb.Hold(p, c.closeTransport)
		c.unwatch.Store(&release)
	}
	return true
}

// challenge answers 401 with the gateway's Digest challenge and the
// reason.
func (c *clientConn) challenge(req *Request, why error, stale bool) {
	c.g.log.Debug("rtsp: challenged", "client", c.remote, "method", req.Method, "err", why)
	c.reply(req, 401, Header{{"WWW-Authenticate", c.g.digest.challenge(time.Now(), stale)}, {"X-Nanodems-Error", oneLine(why.Error())}})
}

// start handles the first request that needs a camera.
func (c *clientConn) start(req *Request, ru relayURL) {
	switch req.Method {
	case "OPTIONS", "GET_PARAMETER":
		if !c.g.cfg.NoFanOut {
			// Answered here: opening a camera connection per OPTIONS would
			// cost a shared session's viewers one camera connection each,
			// and cameras allow only a handful. (GET_PARAMETER without a
			// session is a keepalive too.)
			h := Header{{"Public", publicMethods}}
			if req.Method == "GET_PARAMETER" {
				h = nil
			}
			c.reply(req, 200, h)
			return
		}
	case "DESCRIBE":
		if c.shareable(req) && c.tryShare(req, ru) {
			return
		}
	case "TEARDOWN":
		c.reply(req, 454, nil) // no session here
		return
	}
	if c.mode == modeNone {
		if err := c.startPass(nil); err != nil {
			c.refuse(req, err)
			return
		}
	}
	c.pt.forward(req, ru)
}

// startPass gives the connection its own camera connection (up, or a new
// one).
func (c *clientConn) startPass(up *upstream) error {
	if up == nil {
		var err error
		if up, err = c.g.dialUpstream(c.ctx, c.principal, c.handle); err != nil {
			return err
		}
	}
	c.pt = newPassthrough(c, up)
	c.mode = modePass
	return nil
}

// reply answers a request from the gateway itself.
func (c *clientConn) reply(req *Request, status int, h Header) {
	resp := &Response{Proto: replyProto(req.Proto), StatusCode: status}
	if cs := req.CSeq(); cs != "" {
		resp.Header = append(resp.Header, Field{"CSeq", cs})
	}
	resp.Header = append(resp.Header, Field{"Server", userAgent})
	resp.Header = append(resp.Header, h...)
	c.out.write(resp.AppendTo(nil))
}

func replyProto(p string) string {
	if strings.HasPrefix(p, "RTSP/2") {
		return "RTSP/2.0"
	}
	return "RTSP/1.0"
}

// refuse answers a request with err's status and reason.
func (c *clientConn) refuse(req *Request, err error) {
	status := statusOf(err)
	c.g.log.Debug("rtsp: refused", "client", c.remote, "method", req.Method, "status", status, "err", err)
	c.reply(req, status, Header{{"X-Nanodems-Error", oneLine(err.Error())}})
}

func oneLine(s string) string {
	s = strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// shutdown ends the connection: the camera session it drove is torn down
// (or its place in a shared one given up).
func (c *clientConn) shutdown() {
	if !c.finished.CompareAndSwap(false, true) {
		return
	}
	c.idle.Stop()
	c.cancel()
	if stop := c.unwatch.Swap(nil); stop != nil {
		(*stop)()
	}
	switch c.mode {
	case modePass:
		c.pt.close()
	case modeView:
		c.view.leave()
	}
	c.out.close()
	c.closeTransport()
	c.g.track(c, false)
	c.g.stats.Conns.Add(-1)
}

func (g *Gateway) goFn(f func()) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		f()
	}()
}
