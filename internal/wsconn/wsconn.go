// Package wsconn turns a WebSocket into a byte stream with half-close: the
// protocol of /api/tunnel/{handle} and of the CLI's raw tunnels.
//
// Each binary message carries the next bytes of the stream; message
// boundaries mean nothing. An empty binary message means "I am done
// sending" (TCP's FIN): the peer reads EOF but may go on writing. A close
// frame ends both directions. coder/websocket's own NetConn skips empty
// messages and so cannot carry half-close, which a target that reads to EOF
// before answering needs.
package wsconn

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Conn is a net.Conn over a WebSocket.
type Conn struct {
	ws     *websocket.Conn
	ctx    context.Context
	cancel context.CancelFunc
	local  net.Addr
	remote net.Addr

	// reader state, used by one Read at a time
	r       io.Reader
	rcancel context.CancelFunc // ends the current message's context
	gotData bool               // the current message yielded bytes
	readEOF bool

	dmu           sync.Mutex
	readDeadline  time.Time
	writeDeadline time.Time

	wmu       sync.Mutex
	writeDone bool
	closeOnce sync.Once
}

// New wraps ws. local and remote are reported by LocalAddr/RemoteAddr.
func New(ws *websocket.Conn, local, remote net.Addr) *Conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &Conn{ws: ws, ctx: ctx, cancel: cancel, local: local, remote: remote}
}

// Read reads stream bytes; it returns io.EOF after the peer's empty message
// or a normal close.
func (c *Conn) Read(p []byte) (int, error) {
	for {
		if err := c.WaitRead(); err != nil {
			return 0, err
		}
		n, err := c.r.Read(p)
		if n > 0 {
			c.gotData = true
		}
		if err != nil && err != io.EOF {
			return n, c.refuse(err)
		}
		if err == io.EOF {
			c.r = nil
			c.rcancel()
			if !c.gotData {
				c.readEOF = true // empty message: the peer's half-close
				return 0, io.EOF
			}
			if n == 0 {
				continue
			}
			return n, nil
		}
		return n, err
	}
}

// WaitRead blocks until a message has begun (or the stream ended) without
// a caller's buffer, so pipe.Copy holds no buffer for an idle tunnel.
func (c *Conn) WaitRead() error {
	if c.readEOF {
		return io.EOF
	}
	if c.r != nil {
		// A message used up but not yet ended would send the caller into
		// Read, holding its buffer, to wait for the next one: probe it.
		if n, err := c.r.Read(nil); n == 0 && err == io.EOF {
			c.r = nil
			c.rcancel()
			if !c.gotData {
				c.readEOF = true
				return io.EOF
			}
		} else {
			return nil
		}
	}
	// coder/websocket reads the whole message under the context given to
	// Reader, so it lives until the message is consumed.
	ctx, cancel := c.opCtx(&c.readDeadline)
	typ, r, err := c.ws.Reader(ctx)
	if err != nil {
		cancel()
		if websocket.CloseStatus(err) == websocket.StatusNormalClosure {
			c.readEOF = true
			return io.EOF
		}
		return c.refuse(err)
	}
	if typ != websocket.MessageBinary {
		cancel()
		c.ws.Close(websocket.StatusUnsupportedData, "binary messages only")
		return errors.New("wsconn: peer sent a text message")
	}
	c.r, c.rcancel, c.gotData = r, cancel, false
	return nil
}

// refuse closes the WebSocket at once with the status of a frame the
// reader refused (CheckClientFrames), so the peer learns the real cause
// and whoever closes next (pipe.Join's Abort, 1011) finds it closed.
func (c *Conn) refuse(err error) error {
	var fe *FrameError
	if errors.As(err, &fe) {
		c.closeOnce.Do(func() {
			c.ws.Close(fe.Code, fe.Reason)
			c.cancel()
		})
	}
	return err
}

// Write sends p as one binary message. Empty writes send nothing: an empty
// message is reserved for CloseWrite.
func (c *Conn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.writeDone {
		return 0, net.ErrClosed
	}
	ctx, cancel := c.opCtx(&c.writeDeadline)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageBinary, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// CloseWrite sends the empty message that tells the peer we are done.
func (c *Conn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.writeDone {
		return nil
	}
	c.writeDone = true
	ctx, cancel := c.opCtx(&c.writeDeadline)
	defer cancel()
	return c.ws.Write(ctx, websocket.MessageBinary, nil)
}

// Close ends both directions with a normal close frame.
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		err = c.ws.Close(websocket.StatusNormalClosure, "")
		c.cancel()
	})
	return err
}

// Abort ends both directions with status 1011 and the reason, so the peer
// reads an error rather than EOF: the stream was cut, not finished.
func (c *Conn) Abort(reason error) error {
	var err error
	c.closeOnce.Do(func() {
		msg := "tunnel cut"
		if reason != nil {
			msg += ": " + reason.Error()
		}
		if len(msg) > 120 { // a close reason fits in 123 bytes of UTF-8
			msg = strings.ToValidUTF8(msg[:120], "")
		}
		err = c.ws.Close(websocket.StatusInternalError, msg)
		c.cancel()
	})
	return err
}

func (c *Conn) opCtx(deadline *time.Time) (context.Context, context.CancelFunc) {
	c.dmu.Lock()
	d := *deadline
	c.dmu.Unlock()
	if d.IsZero() {
		return c.ctx, func() {}
	}
	return context.WithDeadline(c.ctx, d)
}

func (c *Conn) LocalAddr() net.Addr  { return c.local }
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline sets both deadlines. As with coder/websocket, a deadline that
// passes during an operation closes the WebSocket.
func (c *Conn) SetDeadline(t time.Time) error {
	c.dmu.Lock()
	c.readDeadline, c.writeDeadline = t, t
	c.dmu.Unlock()
	return nil
}

func (c *Conn) SetReadDeadline(t time.Time) error {
	c.dmu.Lock()
	c.readDeadline = t
	c.dmu.Unlock()
	return nil
}

func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.dmu.Lock()
	c.writeDeadline = t
	c.dmu.Unlock()
	return nil
}

// Addr is a net.Addr for the WebSocket's ends.
type Addr string

func (a Addr) Network() string { return "websocket" }
func (a Addr) String() string  { return string(a) }
