package rtsp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/nanodems/connector/internal/acceptloop"
)

// stdListener is the goroutine-per-connection listener: a reader
// goroutine per connection that handles the client's items itself, and a
// writer goroutine (stdOutput) that batches what goes out.
type stdListener struct {
	g  *Gateway
	ln net.Listener
}

func listenStd(g *Gateway) (listener, error) {
	ln, err := net.Listen("tcp", g.cfg.Addr)
	if err != nil {
		return nil, err
	}
	return serveStd(g, ln), nil
}

// listenTLS is the RTSPS listener (rtsps://): the goroutine listener
// behind TLS, since gnet's event loops have no TLS. The handshake runs on
// the connection's reader goroutine, bounded by the idle timeout like the
// first request.
func listenTLS(g *Gateway) (listener, error) {
	ln, err := net.Listen("tcp", g.cfg.TLSAddr)
	if err != nil {
		return nil, err
	}
	return serveStd(g, tls.NewListener(ln, g.cfg.TLS)), nil
}

func serveStd(g *Gateway, ln net.Listener) *stdListener {
	l := &stdListener{g: g, ln: ln}
	g.goFn(l.accept)
	return l
}

func (l *stdListener) addr() string { return dialable(l.ln.Addr()) }

func (l *stdListener) close() error { return l.ln.Close() }

func (l *stdListener) accept() {
	acceptloop.Serve(context.Background(), l.ln, l.g.log.With("listener", "rtsp"), func(nc net.Conn) {
		if n := l.g.cfg.SendBuffer; n > 0 {
			if tc, ok := nc.(*net.TCPConn); ok {
				tc.SetWriteBuffer(n)
			} else if tc, ok := nc.(*tls.Conn); ok {
				if tcp, ok := tc.NetConn().(*net.TCPConn); ok {
					tcp.SetWriteBuffer(n)
				}
			}
		}
		l.g.goFn(func() { l.serve(nc) })
	})
}

// serve runs one connection.
func (l *stdListener) serve(nc net.Conn) {
	g := l.g
	rd := NewReader(nc, 4096, g.cfg.Limits)
	nc.SetReadDeadline(time.Now().Add(g.cfg.IdleTimeout))
	head, err := rd.peek(5)
	if err != nil && len(head) == 0 {
		nc.Close()
		return
	}
	if sniffHTTP(head) == httpTunnel {
		l.serveTunnelHalf(nc, rd)
		return
	}
	nc.SetReadDeadline(time.Time{}) // the connection's idle timer takes over
	out := newStdOutput(nc, g.cfg.Backlog, g.cfg.DropAfter)
	out.drops = &g.stats.Drops
	c := newClientConn(g, out, nc.RemoteAddr(), nc.LocalAddr(), out.close)
	out.start(g.goFn)
	defer c.shutdown()
	for {
		it, err := rd.Next()
		if err != nil {
			var pe *ParseError
			if errors.As(err, &pe) {
				out.write((&Response{StatusCode: pe.Status, Header: Header{{"X-Nanodems-Error", oneLine(pe.Msg)}}}).AppendTo(nil))
				lingerClose(nc, out)
			}
			return
		}
		c.handleItem(it)
	}
}

// serveTunnelHalf serves one half of an HTTP tunnel. The GET half owns
// the logical connection and lives as long as it; a POST half feeds it
// requests, through the connection's worker queue, since the two halves
// are read by two goroutines.
func (l *stdListener) serveTunnelHalf(nc net.Conn, rd *Reader) {
	g := l.g
	var hh TunnelHalf
	for {
		var n int
		var err error
		hh, n, err = ParseTunnelHalf(rd.Buffered())
		if err == nil {
			rd.start += n
			break
		}
		var pe *ParseError
		if errors.As(err, &pe) {
			nc.Write(httpError(pe.Status))
			nc.Close()
			return
		}
		if err := rd.fill(); err != nil {
			nc.Close()
			return
		}
	}
	if !hh.Post {
		out := newStdOutput(nc, g.cfg.Backlog, g.cfg.DropAfter)
		out.drops = &g.stats.Drops
		var post struct {
			sync.Mutex
			nc io.Closer
		}
		closeAll := func() {
			out.close()
			post.Lock()
			if post.nc != nil {
				post.nc.Close()
			}
			post.Unlock()
		}
		c := newClientConn(g, out, nc.RemoteAddr(), nc.LocalAddr(), closeAll)
		c.attachPost = func(p io.Closer) {
			post.Lock()
			old := post.nc
			post.nc = p
			post.Unlock()
			if old != nil {
				old.Close() // one POST at a time: the newer wins
			}
		}
		out.start(g.goFn)
		if !g.registerTunnel(hh.Cookie, c) {
			out.write(httpError(400))
			c.end()
			return
		}
		out.write(tunnelAnswer(hh.Minor))
		nc.SetReadDeadline(time.Time{})
		// Nothing more comes on a GET half; reading only notices its end.
		var sink [512]byte
		for {
			if _, err := nc.Read(sink[:]); err != nil {
				break
			}
		}
		g.unregisterTunnel(hh.Cookie, c)
		c.end()
		return
	}
	c := g.lookupTunnel(hh.Cookie)
	if c == nil {
		nc.Write(httpError(404))
		nc.Close()
		return
	}
	c.attachPost(nc)
	nc.SetReadDeadline(time.Time{})
	var dec Base64Stream
	feed := itemFeeder{lim: g.cfg.Limits}
	var plain []byte
	buf := make([]byte, 16<<10)
	pending := bytes.Clone(rd.Buffered())
	for {
		var chunk []byte
		if len(pending) > 0 {
			chunk, pending = pending, nil
		} else {
			n, err := nc.Read(buf)
			if err != nil {
				nc.Close()
				return
			}
			chunk = buf[:n]
		}
		var err error
		if plain, err = dec.Decode(plain[:0], chunk); err == nil {
			err = feed.feed(plain, c.submit)
		}
		if err != nil {
			g.log.Debug("rtsp: bad HTTP tunnel body", "client", c.remote, "err", err)
			c.closeTransport()
			return
		}
	}
}

// lingerClose sends what is queued, then closes the way net/http does
// after an error: write side first, then a short drain of what the peer
// still sends, so the close is no RST that would destroy the answer
// before the client reads it.
func lingerClose(nc net.Conn, out *stdOutput) {
	out.drain(time.Second)
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	io.Copy(io.Discard, io.LimitReader(nc, 256<<10))
}

// peek returns at least n buffered bytes, or fewer and the read error.
func (r *Reader) peek(n int) ([]byte, error) {
	for r.end-r.start < n {
		if err := r.fill(); err != nil {
			return r.buf[r.start:r.end], err
		}
	}
	return r.buf[r.start:r.end], nil
}

// dialable turns a listener address into one a client can dial: the
// unspecified address becomes loopback.
func dialable(a net.Addr) string {
	host, port, _ := net.SplitHostPort(a.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
