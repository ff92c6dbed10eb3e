package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nanodems/connector/internal/acceptloop"
	"github.com/nanodems/connector/internal/pipe"
	"github.com/nanodems/connector/mux"
)

// The proxy (way b) is one unprivileged local port that speaks SOCKS5 and
// HTTP CONNECT, told apart by the first byte (0x05 or an HTTP method's
// first letter). It reaches every plan address whether or not the OS let
// the CLI bind it, so it is the way past missing admin rights and missing
// loopback aliases: curl --socks5-hostname, -x, browsers, and most SDKs
// take a proxy.

// listenProxy listens on addr, which must be a loopback address: a proxy
// on another interface would hand the session's devices to the LAN.
func listenProxy(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--socks %q: %w", addr, err)
	}
	if ip, err := netip.ParseAddr(host); host != "localhost" && (err != nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("--socks %q: the proxy listens on a loopback address only (127.0.0.1:1080), or the LAN could use this session", addr)
	}
	ln, err := localListen.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--socks: %w", err)
	}
	return ln, nil
}

// proxyHandshakeTimeout bounds the SOCKS or CONNECT exchange; the tunnel
// itself has no timeout.
const proxyHandshakeTimeout = 10 * time.Second

func (t *Tunnel) serveProxy(ln net.Listener) {
	defer t.wg.Done()
	acceptloop.Serve(t.ctx, ln, t.log.With("listener", "proxy"), func(c net.Conn) {
		t.serveLocal(c, func(done func()) {
			t.serveProxyConn(c)
			done()
		})
	})
}

// serveProxyConn answers one proxy client: SOCKS5 or HTTP CONNECT, then
// the tunnel.
func (t *Tunnel) serveProxyConn(c net.Conn) {
	c.SetDeadline(time.Now().Add(proxyHandshakeTimeout))
	br := bufio.NewReaderSize(c, 4096)
	first, err := br.Peek(1)
	if err != nil {
		return
	}
	var st *mux.Stream
	switch {
	case first[0] == socksVersion:
		st = t.socksHandshake(c, br)
	case first[0] >= 'A' && first[0] <= 'Z':
		st = t.connectHandshake(c, br)
	default:
		t.log.Debug("proxy: neither SOCKS5 nor HTTP", "remote", c.RemoteAddr().String(), "first_byte", first[0])
		return
	}
	if st == nil {
		return
	}
	c.SetDeadline(time.Time{})
	var local net.Conn = c
	if br.Buffered() > 0 {
		// The client sent bytes after its request without waiting for
		// the answer; they are the tunnel's first bytes.
		local = &bufferedConn{Conn: c, r: br}
	}
	pipe.Join(local, st, nil, nil)
}

// bufferedConn reads what a handshake buffered before the connection.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *bufferedConn) CloseWrite() error {
	if cw, ok := b.Conn.(pipe.CloseWriter); ok {
		return cw.CloseWrite()
	}
	return nil
}

// target checks a proxy request's host against the plan. Only plan
// addresses are served: an IPv4 literal (curl --socks5-hostname sends it as
// a domain name, which is fine), nothing that would need a DNS lookup.
func (t *Tunnel) target(host string, port uint16) (netip.AddrPort, error) {
	a, err := netip.ParseAddr(host)
	if err != nil || !a.Is4() {
		return netip.AddrPort{}, fmt.Errorf("%q is not a plan address (an IPv4 address 127.0.0.X)", host)
	}
	ap := netip.AddrPortFrom(a, port)
	if _, ok := t.lookup(ap); !ok {
		t.logUnknown(ap)
		return ap, &UnknownAddrError{Addr: ap}
	}
	return ap, nil
}

// dialFor opens the stream of a proxy request, bounded like a listener's.
func (t *Tunnel) dialFor(ap netip.AddrPort) (*mux.Stream, error) {
	ctx, cancel := context.WithTimeout(t.ctx, dialTimeout)
	defer cancel()
	st, err := t.dialStream(ctx, ap)
	if err != nil {
		t.logDialError(ap, err)
	}
	return st, err
}

// SOCKS5 (RFC 1928), the subset a CLI needs: no authentication, CONNECT.
const (
	socksVersion     = 0x05
	socksNoAuth      = 0x00
	socksNoMethod    = 0xff
	SOCKSCmdConnect  = 0x01
	socksAtypIPv4    = 0x01
	socksAtypDomain  = 0x03
	socksAtypIPv6    = 0x04
	socksMaxRequest  = 4 + 1 + 255 + 2 // the longest request: a 255-byte domain
	socksMaxGreeting = 2 + 255
)

// SOCKS5 reply codes.
const (
	SOCKSSucceeded          = 0x00
	SOCKSGeneralFailure     = 0x01
	SOCKSNotAllowed         = 0x02
	SOCKSNetworkUnreachable = 0x03
	SOCKSHostUnreachable    = 0x04
	SOCKSConnectionRefused  = 0x05
	SOCKSTTLExpired         = 0x06
	SOCKSCmdNotSupported    = 0x07
	SOCKSAtypNotSupported   = 0x08
)

// SOCKSRequest is a parsed SOCKS5 request.
type SOCKSRequest struct {
	Command byte
	Host    string // dotted IPv4, bracket-less IPv6, or the domain name as sent
	Port    uint16
}

// SOCKSError is a request the proxy refuses, with the reply code to send.
type SOCKSError struct {
	Reply byte
	Msg   string
}

func (e *SOCKSError) Error() string { return "socks5: " + e.Msg }

// ReadSOCKSGreeting reads the client's greeting (version, methods). It
// reads at most 257 bytes and exactly the greeting's.
func ReadSOCKSGreeting(r io.Reader) (methods []byte, err error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("socks5 greeting: %w", err)
	}
	if hdr[0] != socksVersion {
		return nil, fmt.Errorf("socks5 greeting: version %d", hdr[0])
	}
	methods = make([]byte, hdr[1])
	if _, err := io.ReadFull(r, methods); err != nil {
		return nil, fmt.Errorf("socks5 greeting: methods: %w", err)
	}
	return methods, nil
}

// ReadSOCKSRequest reads one request. It reads exactly the request's bytes,
// at most 262, so what follows stays in r. A request the proxy cannot serve
// (not CONNECT, unknown address type) is a *SOCKSError with its reply
// code; a broken one is a plain error (the connection is just closed).
func ReadSOCKSRequest(r io.Reader) (SOCKSRequest, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return SOCKSRequest{}, fmt.Errorf("socks5 request: %w", err)
	}
	if hdr[0] != socksVersion {
		return SOCKSRequest{}, fmt.Errorf("socks5 request: version %d", hdr[0])
	}
	req := SOCKSRequest{Command: hdr[1]}
	var addr [255]byte
	switch hdr[3] {
	case socksAtypIPv4:
		if _, err := io.ReadFull(r, addr[:4]); err != nil {
			return req, fmt.Errorf("socks5 request: address: %w", err)
		}
		req.Host = netip.AddrFrom4([4]byte(addr[:4])).String()
	case socksAtypIPv6:
		if _, err := io.ReadFull(r, addr[:16]); err != nil {
			return req, fmt.Errorf("socks5 request: address: %w", err)
		}
		req.Host = netip.AddrFrom16([16]byte(addr[:16])).String()
	case socksAtypDomain:
		if _, err := io.ReadFull(r, addr[:1]); err != nil {
			return req, fmt.Errorf("socks5 request: address: %w", err)
		}
		n := int(addr[0])
		if n == 0 {
			return req, &SOCKSError{Reply: SOCKSHostUnreachable, Msg: "empty domain name"}
		}
		if _, err := io.ReadFull(r, addr[:n]); err != nil {
			return req, fmt.Errorf("socks5 request: domain: %w", err)
		}
		req.Host = string(addr[:n])
	default:
		return req, &SOCKSError{Reply: SOCKSAtypNotSupported, Msg: fmt.Sprintf("address type %d", hdr[3])}
	}
	var port [2]byte
	if _, err := io.ReadFull(r, port[:]); err != nil {
		return req, fmt.Errorf("socks5 request: port: %w", err)
	}
	req.Port = uint16(port[0])<<8 | uint16(port[1])
	if req.Command != SOCKSCmdConnect {
		return req, &SOCKSError{Reply: SOCKSCmdNotSupported, Msg: fmt.Sprintf("command %d (only CONNECT)", req.Command)}
	}
	if req.Port == 0 {
		return req, &SOCKSError{Reply: SOCKSHostUnreachable, Msg: "port 0"}
	}
	return req, nil
}

// socksReply is a reply with bind address bind (zero: 0.0.0.0:0).
func socksReply(code byte, bind netip.AddrPort) []byte {
	b := []byte{socksVersion, code, 0, socksAtypIPv4, 0, 0, 0, 0, 0, 0}
	if bind.Addr().Is4() {
		a := bind.Addr().As4()
		copy(b[4:8], a[:])
		b[8], b[9] = byte(bind.Port()>>8), byte(bind.Port())
	}
	return b
}

// socksHandshake serves the SOCKS5 exchange and returns the open stream,
// or nil after a refusal has been answered.
func (t *Tunnel) socksHandshake(c net.Conn, br *bufio.Reader) *mux.Stream {
	methods, err := ReadSOCKSGreeting(br)
	if err != nil {
		return nil
	}
	if !slices.Contains(methods, socksNoAuth) {
		c.Write([]byte{socksVersion, socksNoMethod})
		return nil
	}
	if _, err := c.Write([]byte{socksVersion, socksNoAuth}); err != nil {
		return nil
	}
	req, err := ReadSOCKSRequest(br)
	if err != nil {
		var se *SOCKSError
		if errors.As(err, &se) {
			c.Write(socksReply(se.Reply, netip.AddrPort{}))
		}
		return nil
	}
	ap, err := t.target(req.Host, req.Port)
	if err != nil {
		c.Write(socksReply(SOCKSNotAllowed, netip.AddrPort{}))
		return nil
	}
	// The request is in; the dial has its own bound (it may wait for a
	// relay reconnect), and the answer must not miss the handshake's.
	c.SetDeadline(time.Time{})
	st, err := t.dialFor(ap)
	if err != nil {
		c.Write(socksReply(socksCode(err), netip.AddrPort{}))
		return nil
	}
	if _, err := c.Write(socksReply(SOCKSSucceeded, ap)); err != nil {
		st.Close()
		return nil
	}
	return st
}

// socksCode maps a dial error to a SOCKS5 reply.
func socksCode(err error) byte {
	var se *mux.StatusError
	if errors.As(err, &se) {
		switch se.Code {
		case mux.NotAllowed:
			return SOCKSNotAllowed
		case mux.Refused:
			return SOCKSConnectionRefused
		case mux.Unreachable:
			return SOCKSHostUnreachable
		case mux.TimedOut:
			return SOCKSTTLExpired
		}
	}
	return SOCKSGeneralFailure
}

// ConnectRequest is a parsed HTTP CONNECT request.
type ConnectRequest struct {
	Host string
	Port uint16
}

// ConnectError is a CONNECT request the proxy refuses, with the HTTP
// status to answer.
type ConnectError struct {
	Status int
	Msg    string
}

func (e *ConnectError) Error() string { return "http connect: " + e.Msg }

// Bounds of a CONNECT request: the proxy reads no more before it answers.
const (
	MaxConnectHeader  = 16 << 10
	maxConnectHeaders = 100
)

// ReadConnectRequest reads an HTTP/1.x CONNECT request (request line and
// headers, which are skipped) from r, reading at most MaxConnectHeader
// bytes of it. The target must be authority-form host:port. A request
// the proxy refuses is a *ConnectError with its status.
func ReadConnectRequest(r *bufio.Reader) (ConnectRequest, error) {
	budget := MaxConnectHeader
	line, err := readHeaderLine(r, &budget)
	if err != nil {
		return ConnectRequest{}, err
	}
	method, rest, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || !strings.HasPrefix(proto, "HTTP/1.") {
		return ConnectRequest{}, &ConnectError{Status: http.StatusBadRequest, Msg: "malformed request line"}
	}
	for n := 0; ; n++ {
		h, err := readHeaderLine(r, &budget)
		if err != nil {
			return ConnectRequest{}, err
		}
		if h == "" {
			break
		}
		if n == maxConnectHeaders {
			return ConnectRequest{}, &ConnectError{Status: http.StatusRequestHeaderFieldsTooLarge, Msg: "too many header lines"}
		}
	}
	if method != http.MethodConnect {
		return ConnectRequest{}, &ConnectError{Status: http.StatusMethodNotAllowed, Msg: "only CONNECT is served here; use the proxy as an HTTPS (CONNECT) or SOCKS5 proxy"}
	}
	host, port, err := net.SplitHostPort(target)
	if err != nil || host == "" {
		return ConnectRequest{}, &ConnectError{Status: http.StatusBadRequest, Msg: fmt.Sprintf("target %q is not host:port", target)}
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return ConnectRequest{}, &ConnectError{Status: http.StatusBadRequest, Msg: fmt.Sprintf("target %q has no valid port", target)}
	}
	return ConnectRequest{Host: host, Port: uint16(p)}, nil
}

// readHeaderLine reads one CRLF- (or LF-) terminated line, charging its
// bytes to budget. It never consumes more than budget: a line is looked at
// in the reader's buffer and taken only once it fits.
func readHeaderLine(r *bufio.Reader, budget *int) (string, error) {
	var line []byte
	for {
		if r.Buffered() == 0 {
			if _, err := r.Peek(1); err != nil {
				return "", fmt.Errorf("http connect: %w", err)
			}
		}
		b, _ := r.Peek(r.Buffered())
		take := len(b)
		i := bytes.IndexByte(b, '\n')
		if i >= 0 {
			take = i + 1
		}
		if take > *budget {
			return "", &ConnectError{Status: http.StatusRequestHeaderFieldsTooLarge, Msg: fmt.Sprintf("request header larger than %d bytes", MaxConnectHeader)}
		}
		*budget -= take
		line = append(line, b[:take]...)
		r.Discard(take)
		if i >= 0 {
			break
		}
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return string(line), nil
}

// connectHandshake serves an HTTP CONNECT exchange and returns the open
// stream, or nil after a refusal has been answered.
func (t *Tunnel) connectHandshake(c net.Conn, br *bufio.Reader) *mux.Stream {
	req, err := ReadConnectRequest(br)
	if err != nil {
		var ce *ConnectError
		if errors.As(err, &ce) {
			httpRefuse(c, ce.Status, ce.Msg)
		}
		return nil
	}
	ap, err := t.target(req.Host, req.Port)
	if err != nil {
		httpRefuse(c, http.StatusForbidden, err.Error())
		return nil
	}
	c.SetDeadline(time.Time{}) // as for SOCKS: the dial has its own bound
	st, err := t.dialFor(ap)
	if err != nil {
		httpRefuse(c, connectStatus(err), err.Error())
		return nil
	}
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		st.Close()
		return nil
	}
	return st
}

// connectStatus maps a dial error to the status a CONNECT client sees.
func connectStatus(err error) int {
	var se *mux.StatusError
	if errors.As(err, &se) {
		switch se.Code {
		case mux.NotAllowed:
			return http.StatusForbidden
		case mux.TimedOut:
			return http.StatusGatewayTimeout
		case mux.AgentError:
			return http.StatusServiceUnavailable
		}
		return http.StatusBadGateway
	}
	var sr *SessionRefusedError
	if errors.As(err, &sr) {
		return http.StatusForbidden
	}
	return http.StatusServiceUnavailable
}

// httpRefuse answers a CONNECT with a status and a one-line reason.
func httpRefuse(c net.Conn, status int, msg string) {
	msg = strings.ReplaceAll(msg, "\n", " ") + "\n"
	fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, http.StatusText(status), len(msg), msg)
}
