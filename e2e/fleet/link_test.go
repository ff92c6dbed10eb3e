package fleet

import (
	"io"
	"net"
	"sync"
	"testing"
)

// link is a relay's peer endpoint as the other relays reach it: a TCP
// forwarder in this process to the relay's peer listener, so that a test
// can break the inter-relay link (refuse new connections, cut open ones)
// and mend it, with the relays themselves untouched. Bytes move by
// splice(2) (TCPConn.ReadFrom), so it costs the bridge no copy here.
type link struct {
	addr, target string

	mu    sync.Mutex
	ln    net.Listener // nil while refusing
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// newLink listens on a free loopback port for target; it closes with t.
func newLink(t *testing.T, target string) *link {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	l := &link{addr: ln.Addr().String(), target: target, conns: map[net.Conn]struct{}{}}
	l.serve(ln)
	t.Cleanup(func() {
		l.refuse()
		l.cut()
		l.wg.Wait()
	})
	return l
}

func (l *link) serve(ln net.Listener) {
	l.ln = ln
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				l.forward(c)
			}()
		}
	}()
}

// forward carries c to the target both ways, each direction's
// half-close included, until both ends are done or the link is cut.
func (l *link) forward(c net.Conn) {
	u, err := net.Dial("tcp", l.target)
	if err != nil {
		c.Close()
		return
	}
	if !l.track(c, u) {
		c.Close()
		u.Close()
		return
	}
	defer l.untrack(c, u)
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		io.Copy(dst, src)
		dst.(*net.TCPConn).CloseWrite()
	}
	go pipe(u, c)
	go pipe(c, u)
	wg.Wait()
	c.Close()
	u.Close()
}

func (l *link) track(cs ...net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ln == nil {
		return false
	}
	for _, c := range cs {
		l.conns[c] = struct{}{}
	}
	return true
}

func (l *link) untrack(cs ...net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range cs {
		delete(l.conns, c)
	}
}

// refuse closes the listener: a relay that dials the endpoint gets
// "connection refused", as from a peer whose port is closed.
func (l *link) refuse() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ln != nil {
		l.ln.Close()
		l.ln = nil
	}
}

// cut closes every connection the link carries, both ends, as a network
// that drops them would (their peers see a reset or an end of stream).
func (l *link) cut() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		c.(*net.TCPConn).SetLinger(0) // a reset, not a clean end
		c.Close()
	}
	return len(l.conns) / 2
}

// restore listens on the link's address again.
func (l *link) restore(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", l.addr)
	must(t, err)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.serve(ln)
}
