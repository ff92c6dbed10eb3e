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

	data    chan *mem.Reader // data frames from the receive loop; closed at eof, abort or error
	rerr    error            // why data was closed; read after it is
	rpcDone chan struct{}    // closed when the receive loop ends
	pending *mem.Reader      // the frame Read is in, nil between frames

	rmu       sync.Mutex // one Read at a time: pending is Read's
	rdMu      sync.Mutex
	rdTime    time.Time
	rdChanged chan struct{}

	wmu     sync.Mutex
	wdTime  atomic.Pointer[time.Time]
	sentEOF bool // under wmu
	gotEOF  atomic.Bool

	closed    chan struct{}
	closeOnce sync.Once
}

// bridgeChunk bounds one data frame: gRPC refuses messages over 4 MiB by
// default, and smaller frames keep flow control fair between tunnels.
const bridgeChunk = 256 << 10

func newBridgeConn(st msgStream, client bool, end func(), local, remote net.Addr, bytes *atomic.Uint64) *bridgeConn {
	c := &bridgeConn{
		st: st, client: client, end: end, local: local, remote: remote, bytes: bytes,
		data: make(chan *mem.Reader, 4), rpcDone: make(chan struct{}),
		rdChanged: make(chan struct{}), closed: make(chan struct{}),
	}
	go c.receive()
	return c
}

// receive reads frames until the stream ends. After the far side's eof
// or abort it keeps reading, to see the stream finish (rpcDone).
func (c *bridgeConn) receive() {
	defer close(c.rpcDone)
	open := true
	finish := func(err error) {
		if open {
			c.rerr = err
			close(c.data)
			open = false
		}
	}
	for {
		var f frame
		if err := c.st.RecvMsg(&f); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF // the stream ended with no eof frame
			}
			finish(fmt.Errorf("bridge: %w", err))
			return
		}
		switch {
		case !open:
			if f.data != nil {
				f.data.Close()
			}
		case f.kind == frameData:
			if f.data.Remaining() == 0 {
				f.data.Close()
				continue
			}
			select {
			case c.data <- f.data:
			case <-c.closed:
				f.data.Close()
				finish(net.ErrClosed)
			}
		case f.kind == frameEOF:
			c.gotEOF.Store(true)
			finish(io.EOF)
		case f.kind == frameAbort:
			finish(fmt.Errorf("bridge: tunnel cut on the far side: %s", f.body))
		default:
			finish(fmt.Errorf("bridge: unexpected frame %q", f.kind))
		}
	}
}

func (c *bridgeConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for c.pending == nil {
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

// next waits for the next data frame, the end of the stream, the read
// deadline, or a change of the deadline (then pending stays nil and Read
// waits again under the new one).
func (c *bridgeConn) next() error {
	c.rdMu.Lock()
	dl, changed := c.rdTime, c.rdChanged
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
	select {
	case b, ok := <-c.data:
		if !ok {
			return c.rerr
		}
		c.pending = b
		return nil
	case <-c.closed:
		return net.ErrClosed
	case <-expired:
		return os.ErrDeadlineExceeded
	case <-changed:
		return nil
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
		return fmt.Errorf("bridge: %w", err)
	}
	return nil
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
		select {
		case <-c.rpcDone:
		case <-time.After(bridgeCloseWait):
		}
	}
	c.closeNow()
	return nil
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
	c.rdTime = t
	close(c.rdChanged)
	c.rdChanged = make(chan struct{})
	c.rdMu.Unlock()
	return nil
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
