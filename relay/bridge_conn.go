package relay

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
)

// msgStream is the part of a gRPC stream, client or server side, that a
// bridgeConn uses. SendMsg and RecvMsg may run at once, each from one
// goroutine.
type msgStream interface {
	SendMsg(m any) error
	RecvMsg(m any) error
}

// bridgeConn is a BridgeTunnel stream as a net.Conn, on both relays: on
// the calling relay it is what Dial returns, so that every access path
// gets the same conn as from a local agent; on the relay that holds the
// agent it is joined to the agent's tunnel. CloseWrite sends an eof frame
// (the other side's Read returns io.EOF, its writes go on); Abort sends an
// abort frame, so that a cut tunnel reaches the far side as an error.
type bridgeConn struct {
	st     msgStream
	client bool
	// end ends the stream at once: the caller cancels its RPC; the callee
	// makes its handler return. Queued data may be lost; a graceful end
	// (both eofs exchanged) waits for the stream to finish first.
	end           func()
	local, remote net.Addr
	bytes         *atomic.Uint64 // counts both directions, may be nil
	// meter is the access path's counters of a tunnel Dial returned (the
	// calling relay's end); nil on the relay that holds the agent, whose
	// tunnel counts there. Set before the conn is handed out.
	meter  *pathMeter
	status string // the OK status's reason (a UDP relay's ports)

	// Read's state, under rmu (one Read at a time).
	rmu     sync.Mutex
	pending *mem.Reader     // the frame Read is in, nil between frames
	rerr    error           // set at eof, abort or error: what every later Read returns
	waiting chan recvResult // a RecvMsg that a Read with a deadline started and no Read has taken yet

	rdMu      sync.Mutex
	rdTime    time.Time
	rdChanged chan struct{}
	// inline is set while a Read without a deadline waits in RecvMsg
	// itself; a deadline set meanwhile arms cutTimer, which ends the
	// stream when it passes (cut), as nothing else interrupts RecvMsg.
	inline   bool
	inlineN  uint64 // counts inline waits: a timer armed in one cuts no other
	cut      bool
	cutTimer *time.Timer

	wmu     sync.Mutex
	wdTime  atomic.Pointer[time.Time]
	sentEOF bool // under wmu
	gotEOF  atomic.Bool

	closed    chan struct{}
	closeOnce sync.Once
}

// recvResult is one RecvMsg's outcome.
type recvResult struct {
	f   frame
	err error
}

// bridgeChunk bounds one data frame: gRPC refuses messages over 4 MiB by
// default, and smaller frames keep flow control fair between tunnels.
const bridgeChunk = 256 << 10

func newBridgeConn(st msgStream, client bool, end func(), local, remote net.Addr, bytes *atomic.Uint64) *bridgeConn {
	return &bridgeConn{
		st: st, client: client, end: end, local: local, remote: remote, bytes: bytes,
		rdChanged: make(chan struct{}), closed: make(chan struct{}),
	}
}

// Read receives frames in the calling goroutine: a Read with no deadline
// calls RecvMsg itself. A receive loop feeding Read through a channel
// cost a goroutine hand-off per frame on each relay, which on a loaded
// 2-core machine was most of the bridge's round-trip overhead
// (docs/perf-ha.md). Only a Read with a deadline waits for a RecvMsg in
// a goroutine of its own, which the next Read takes over if it times out.
func (c *bridgeConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for c.pending == nil {
		if c.rerr != nil {
			return 0, c.rerr
		}
		if err := c.next(); err != nil {
			return 0, err
		}
	}
	n, _ := c.pending.Read(p)
	if c.pending.Remaining() == 0 {
		c.pending.Close()
		c.pending = nil
	}
	if c.bytes != nil {
		c.bytes.Add(uint64(n))
	}
	if c.meter != nil {
		c.meter.fromDevice.Add(uint64(n))
	}
	return n, nil
}

// next receives one frame, under rmu: it sets pending or rerr, or returns
// the deadline's error; it returns nil with neither set when the deadline
// changed (Read waits again under the new one) or the frame was empty.
func (c *bridgeConn) next() error {
	c.rdMu.Lock()
	dl, changed := c.rdTime, c.rdChanged
	if dl.IsZero() && c.waiting == nil {
		c.inline = true
		c.inlineN++
		c.rdMu.Unlock()
		var r recvResult
		r.err = c.st.RecvMsg(&r.f)
		c.rdMu.Lock()
		c.inline = false
		cut := c.cut
		if c.cutTimer != nil {
			c.cutTimer.Stop()
			c.cutTimer = nil
		}
		c.rdMu.Unlock()
		if cut {
			c.rerr = os.ErrDeadlineExceeded
			r.f.free()
			return c.rerr
		}
		c.take(r)
		return nil
	}
	c.rdMu.Unlock()
	var expired <-chan time.Time
	if !dl.IsZero() {
		d := time.Until(dl)
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		expired = t.C
	}
	if c.waiting == nil {
		ch := make(chan recvResult, 1)
		c.waiting = ch
		go func() {
			var r recvResult
			r.err = c.st.RecvMsg(&r.f)
			ch <- r
		}()
	}
	select {
	case r := <-c.waiting:
		c.waiting = nil
		c.take(r)
		return nil
	case <-c.closed:
		return net.ErrClosed
	case <-expired:
		return os.ErrDeadlineExceeded
	case <-changed:
		return nil
	}
}

// take records a received frame: a data frame becomes pending; an eof,
// an abort, an unexpected frame or the stream's end sets rerr.
func (c *bridgeConn) take(r recvResult) {
	select {
	case <-c.closed:
		r.f.free()
		c.rerr = net.ErrClosed
		return
	default:
	}
	if r.err != nil {
		if r.err == io.EOF {
			r.err = io.ErrUnexpectedEOF // the stream ended with no eof frame
		}
		c.rerr = linkErr(r.err)
		return
	}
	switch r.f.kind {
	case frameData:
		if r.f.data.Remaining() == 0 {
			r.f.free()
			return
		}
		c.pending = r.f.data
	case frameEOF:
		c.gotEOF.Store(true)
		c.rerr = io.EOF
	case frameAbort:
		c.rerr = fmt.Errorf("bridge: tunnel cut on the far side: %s", r.f.body)
	default:
		r.f.free()
		c.rerr = fmt.Errorf("bridge: unexpected frame %q", r.f.kind)
	}
}

func (c *bridgeConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.sentEOF {
		return 0, errors.New("bridge: write after CloseWrite")
	}
	written := 0
	for len(p) > 0 {
		select {
		case <-c.closed:
			return written, net.ErrClosed
		default:
		}
		n := min(len(p), bridgeChunk)
		if err := c.send(frameData, p[:n]); err != nil {
			return written, err
		}
		if c.bytes != nil {
			c.bytes.Add(uint64(n))
		}
		if c.meter != nil {
			c.meter.toDevice.Add(uint64(n))
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

// send sends one frame under wmu. A write deadline that passes while
// SendMsg waits for flow control ends the stream, as a timed-out write
// may leave a net.Conn unusable.
func (c *bridgeConn) send(kind byte, body []byte) error {
	if dl := c.wdTime.Load(); dl != nil && !dl.IsZero() {
		d := time.Until(*dl)
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		t := time.AfterFunc(d, c.end)
		defer t.Stop()
	}
	if err := c.st.SendMsg(&frame{kind: kind, body: body}); err != nil {
		if dl := c.wdTime.Load(); dl != nil && !dl.IsZero() && !time.Now().Before(*dl) {
			return os.ErrDeadlineExceeded
		}
		return linkErr(err)
	}
	return nil
}

// linkErr is a stream's error as the tunnel's client may read it. gRPC's
// status text names the transport and the peer's address ("rpc error:
// code = Unavailable desc = error reading from server: EOF"); the client
// is told what happened instead.
func linkErr(err error) error {
	if _, ok := status.FromError(err); ok {
		return errors.New("bridge: the link to the relay that holds the agent was lost")
	}
	return fmt.Errorf("bridge: %w", err)
}

// CloseWrite half-closes: the far side reads EOF, and may still answer.
func (c *bridgeConn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.sentEOF {
		return nil
	}
	c.sentEOF = true
	if err := c.send(frameEOF, nil); err != nil {
		return err
	}
	if cs, ok := c.st.(interface{ CloseSend() error }); ok && c.client {
		return cs.CloseSend()
	}
	return nil
}

// Abort ends the tunnel so that the far side's Read fails with reason
// rather than seeing EOF (pipe.Join calls it when a direction breaks).
func (c *bridgeConn) Abort(reason error) error {
	if c.wmu.TryLock() {
		if !c.sentEOF {
			c.sentEOF = true
			c.send(frameAbort, []byte(reason.Error()))
		}
		c.wmu.Unlock()
	}
	c.closeNow()
	return nil
}

// Close ends the tunnel. After both eofs have crossed it lets the stream
// finish, so nothing still queued is lost; otherwise it ends the stream
// at once, as closing a socket with unread data resets it.
func (c *bridgeConn) Close() error {
	graceful := false
	if c.wmu.TryLock() {
		graceful = c.sentEOF && c.gotEOF.Load()
		c.wmu.Unlock()
	}
	if graceful && c.client {
		c.finish()
	}
	c.closeNow()
	return nil
}

// finish waits, for at most bridgeCloseWait, for the far relay to end
// the stream once both eofs have crossed: until then what this side sent
// last may still be queued, and cancelling the RPC would drop it. Reads
// after the eof return at once, so rmu is free.
func (c *bridgeConn) finish() {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	t := time.AfterFunc(bridgeCloseWait, c.end)
	defer t.Stop()
	if c.waiting != nil {
		r := <-c.waiting
		c.waiting = nil
		r.f.free()
		if r.err != nil {
			return
		}
	}
	for {
		var f frame
		if err := c.st.RecvMsg(&f); err != nil {
			return
		}
		f.free()
	}
}

// bridgeCloseWait bounds how long a graceful Close waits for the far
// relay to finish the stream.
const bridgeCloseWait = 5 * time.Second

func (c *bridgeConn) closeNow() {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.end()
	})
}

func (c *bridgeConn) LocalAddr() net.Addr  { return c.local }
func (c *bridgeConn) RemoteAddr() net.Addr { return c.remote }

func (c *bridgeConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

func (c *bridgeConn) SetReadDeadline(t time.Time) error {
	c.rdMu.Lock()
	defer c.rdMu.Unlock()
	c.rdTime = t
	close(c.rdChanged)
	c.rdChanged = make(chan struct{})
	if !c.inline {
		return nil
	}
	// A Read waits in RecvMsg with no deadline: only ending the stream
	// interrupts it, as a write deadline that passes in SendMsg does.
	if c.cutTimer != nil {
		c.cutTimer.Stop()
		c.cutTimer = nil
	}
	if !t.IsZero() {
		n := c.inlineN
		c.cutTimer = time.AfterFunc(time.Until(t), func() { c.cutRead(n) })
	}
	return nil
}

// cutRead ends the stream for a read deadline that passed while a Read
// waited in RecvMsg.
func (c *bridgeConn) cutRead(n uint64) {
	c.rdMu.Lock()
	if !c.inline || c.inlineN != n {
		c.rdMu.Unlock()
		return
	}
	c.cut = true
	c.rdMu.Unlock()
	c.end()
}

func (c *bridgeConn) SetWriteDeadline(t time.Time) error {
	c.wdTime.Store(&t)
	return nil
}

// openStatus is the reason of the far agent's OK status.
func (c *bridgeConn) openStatus() string { return c.status }

// bridgeAddr names the far end of a bridge for logs.
type bridgeAddr string

func (bridgeAddr) Network() string  { return "bridge" }
func (a bridgeAddr) String() string { return string(a) }
