// Package coalesce cuts the system calls of the connector's TLS links:
// Conn makes one write system call of each TLS Write, however many records
// it takes.
//
// Why: the relay's CPU profile during tunnel opens was a third write and
// read system calls (docs/perf.md). crypto/tls writes every
// record with its own Write to the socket: a 64 KiB copy-loop chunk is four
// records and four system calls, and a batch of smux frames (256 KiB, see
// third_party/smux) sixteen. Each write on loopback also runs the
// receiver's TCP input and wakes it, so fewer, larger writes save CPU at
// both ends.
package coalesce

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
)

// Conn is a TLS connection whose Write reaches the socket in one system
// call: the records crypto/tls produces for it are collected below the
// TLS layer and written together when the Write is done. Everything else
// is the embedded *tls.Conn's.
type Conn struct {
	*tls.Conn
	under     *under
	handshook atomic.Bool
	raw       atomic.Pointer[syscall.RawConn] // the socket's, once WriteWouldWait asked (Linux)
}

// Client is tls.Client over raw with coalesced writes.
func Client(raw net.Conn, cfg *tls.Config) *Conn {
	u := &under{Conn: raw, rc: rawSocket(raw)}
	return &Conn{Conn: tls.Client(u, cfg), under: u}
}

// Server is tls.Server over raw with coalesced writes.
func Server(raw net.Conn, cfg *tls.Config) *Conn {
	u := &under{Conn: raw, rc: rawSocket(raw)}
	return &Conn{Conn: tls.Server(u, cfg), under: u}
}

// Handshake runs the TLS handshake (see tls.Conn.Handshake).
func (c *Conn) Handshake() error { return c.HandshakeContext(context.Background()) }

// HandshakeContext runs the TLS handshake (see tls.Conn.HandshakeContext).
func (c *Conn) HandshakeContext(ctx context.Context) error {
	err := c.Conn.HandshakeContext(ctx)
	if err == nil {
		c.handshook.Store(true)
	}
	return err
}

// Write encrypts p and writes its records in one system call.
func (c *Conn) Write(p []byte) (int, error) {
	// The handshake must not run corked: its flights would wait in the
	// buffer for a reply that never comes. tls.Conn.Write would run it
	// implicitly; run it here, uncorked, once.
	if !c.handshook.Load() {
		if err := c.HandshakeContext(context.Background()); err != nil {
			return 0, err
		}
	}
	c.under.cork()
	n, err := c.Conn.Write(p)
	if ferr := c.under.uncork(); err == nil {
		err = ferr
	}
	return n, err
}

// NetConn returns the socket under the TLS layer.
func (c *Conn) NetConn() net.Conn { return c.under.Conn }

// under is the transport under the tls.Conn. While corked it collects what
// crypto/tls writes; uncorked, writes go straight through. Writes that
// crypto/tls makes on its own, outside Conn.Write (handshake flights,
// close_notify, key update answers), are never held back: they happen
// uncorked, or, if they race a Write, leave with its records. Records
// that WriteHeld left for a receive loop (held.go) leave with the next
// write of any kind, or when that loop flushes them.
type under struct {
	net.Conn
	rc     syscall.RawConn // a TCP socket's, read and written with package rawio (Linux); nil: through Conn
	bulk   bool            // the last read brought more than rawio.MaxRaw (owned by the reader: crypto/tls reads under its lock)
	mu     sync.Mutex
	corked int     // Writes in progress
	buf    *[]byte // records collected while corked or held; pooled, nil when empty
	err    error   // the socket failed: every later write fails too
	// size is len(*buf); held is size when WriteHeld last left buf for
	// a loop to flush, 0 once written; room is what the socket had room
	// for when the first of those records was held (WriteWouldWait).
	// Atomic, so that WriteWouldWait never takes mu, which flushHeld
	// only tries.
	size atomic.Int64
	held atomic.Int64
	room atomic.Int64
	// credit is the room WriteWouldWait last measured less what was
	// written since (writeCharge each); answers counts the answers it
	// gave since it measured (Linux).
	credit  atomic.Int64
	answers atomic.Int32

	loop loopHolds // connections holding records until this one's next read
}

// maxBatch is the largest Write whose records are collected in a pooled
// buffer: smux's batch (256 KiB) plus a frame.
const maxBatch = 320 << 10

// recordPool holds the buffers records are collected in: maxBatch plus
// the records' headers and tags.
var recordPool = sync.Pool{New: func() any { b := make([]byte, 0, maxBatch+maxBatch/64); return &b }}

func (u *under) Write(p []byte) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.err != nil {
		return 0, u.err
	}
	if u.corked == 0 && u.buf == nil {
		u.credit.Add(-writeCharge(len(p)))
		n, err := u.write(p)
		u.err = err
		return n, err
	}
	if u.buf == nil {
		u.buf = recordPool.Get().(*[]byte)
	}
	*u.buf = append(*u.buf, p...)
	u.size.Store(int64(len(*u.buf)))
	if u.corked == 0 {
		// Held records go first: they were encrypted before p.
		if err := u.writeBuf(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Read reads the socket, after writing what other connections hold
// until this one reads: the receive loop that reads here forwarded it.
func (u *under) Read(p []byte) (int, error) {
	if u.loop.any.Load() {
		u.loop.flush()
	}
	return u.read(p)
}

func (u *under) cork() {
	u.mu.Lock()
	u.corked++
	u.mu.Unlock()
}

// uncork ends one Write; the last one out writes what was collected.
func (u *under) uncork() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.corked--
	if u.corked > 0 || u.buf == nil {
		return u.err
	}
	return u.writeBuf()
}

// writeBuf writes the collected records in one system call. The caller
// holds mu, no Write is in progress, and buf is not nil.
func (u *under) writeBuf() error {
	b := u.buf
	u.buf = nil
	u.size.Store(0)
	u.held.Store(0)
	if u.err == nil {
		u.credit.Add(-writeCharge(len(*b)))
		_, u.err = u.write(*b)
	}
	if cap(*b) <= maxBatch+maxBatch/64 {
		*b = (*b)[:0]
		recordPool.Put(b)
	}
	return u.err
}

// writeCharge is what a write of n bytes may add to the memory queued on
// the socket, as WriteWouldWait counts it: twice the bytes and a
// kilobyte, more than the data and the skbs that carry it take.
func writeCharge(n int) int64 { return 2*int64(n) + 1024 }

// Dial is tls.Dialer.DialContext with coalesced writes: it connects with
// d, runs the handshake under ctx and returns the connection. As with
// tls.Dial, a config without ServerName gets the host of addr.
func Dial(ctx context.Context, d *net.Dialer, network, addr string, cfg *tls.Config) (*Conn, error) {
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	c := Client(raw, cfg)
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

// Socketer is a net.Conn whose Read and Write are those of the TCP socket
// Socket returns (nil if there is none): a wrapper that only keeps books,
// such as the relay's cap of connections per address. A Conn over one
// reads and writes that socket directly.
type Socketer interface {
	Socket() *net.TCPConn
}

// Listener wraps ln so that the TLS connections served over its
// connections (tls.NewListener(coalesce.Listener(ln), cfg)) can write
// coalesced: Hijacked wraps such a *tls.Conn once an HTTP handler owns it.
// Until then writes go through as they come.
func Listener(ln net.Listener) net.Listener { return listener{ln} }

type listener struct{ net.Listener }

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &under{Conn: c, rc: rawSocket(c)}, nil
}

// Hijacked returns a connection whose Writes reach the socket in one
// system call, for a *tls.Conn served over a Listener (a hijacked HTTP
// connection, whose handshake is done); any other conn is returned as it
// is.
func Hijacked(c net.Conn) net.Conn {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return c
	}
	u, ok := tc.NetConn().(*under)
	if !ok {
		return c
	}
	cc := &Conn{Conn: tc, under: u}
	cc.handshook.Store(tc.ConnectionState().HandshakeComplete)
	return cc
}
