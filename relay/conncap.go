package relay

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/nanodems/connector/internal/coalesce"
)

// capListener bounds the connections one client address holds open on
// the API listener. Each open connection is a file descriptor, and the
// relay's descriptors are shared by every operator and every agent: one
// address that opens and keeps connections (idle keep-alives, handshakes
// it never finishes) would otherwise take them all, and from then on no
// agent can connect. Over its bound, a new connection is closed at once,
// before the TLS handshake: answering it a 503 would cost the handshake's
// CPU and keep the descriptor for as long as the client takes to read,
// which is what the bound is there to save. IPv6 clients are counted per
// /64, the block one subscriber gets.
type capListener struct {
	net.Listener
	max int
	log *slog.Logger

	mu      sync.Mutex
	open    map[netip.Addr]int
	refused int       // since the last log line
	logged  time.Time // last "refused" log line
}

func newCapListener(ln net.Listener, max int, log *slog.Logger) *capListener {
	return &capListener{Listener: ln, max: max, log: log, open: map[netip.Addr]int{}}
}

// clientKey is what the bound counts by: the IPv4 address, or the IPv6 /64.
func clientKey(a net.Addr) netip.Addr {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// Accept returns the next connection whose address is under its bound;
// errors are the listener's, unchanged (http.Server tells temporary ones
// by their type).
func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := clientKey(c.RemoteAddr())
		l.mu.Lock()
		if l.open[key] >= l.max {
			l.refused++
			// One line per 10 s at most: a flood must not become a flood of logs.
			if now := time.Now(); now.Sub(l.logged) >= 10*time.Second {
				l.log.Warn("API connection refused: too many open connections from one address", "client", key.String(), "max_per_address", l.max, "refused", l.refused)
				l.logged, l.refused = now, 0
			}
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.open[key]++
		l.mu.Unlock()
		return &cappedConn{Conn: c, l: l, key: key}, nil
	}
}

func (l *capListener) release(key netip.Addr) {
	l.mu.Lock()
	if l.open[key]--; l.open[key] <= 0 {
		delete(l.open, key)
	}
	l.mu.Unlock()
}

// cappedConn gives its slot back when closed, once.
type cappedConn struct {
	net.Conn
	l    *capListener
	key  netip.Addr
	once sync.Once
}

func (c *cappedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.key) })
	return err
}

var _ coalesce.Socketer = (*cappedConn)(nil)

// Socket is the TCP socket under c, whose reads and writes are c's
// (coalesce.Socketer): the relay's TLS links read and write it directly.
func (c *cappedConn) Socket() *net.TCPConn {
	tc, _ := c.Conn.(*net.TCPConn)
	return tc
}

// CloseWrite half-closes, as net/http does to plain-HTTP connections
// before it closes them.
func (c *cappedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
