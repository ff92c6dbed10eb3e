package rtsp

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
)

// RTSP over HTTP, as QuickTime defined it ("Tunneling QuickTime RTSP and
// RTP over HTTP", Apple 1999) and VLC, ffmpeg, live555 and gortsplib
// speak it: for networks that let only HTTP out, the client opens two
// connections to the same port and ties them with an x-sessioncookie
// header:
//
//	GET  /{handle}/path HTTP/1.0   Accept: application/x-rtsp-tunnelled
//	     the server's half: an HTTP 200 header, then raw RTSP answers and
//	     interleaved frames, for the life of the connection
//	POST /{handle}/path HTTP/1.0   Content-Type: application/x-rtsp-tunnelled
//	     the client's half: an HTTP header announcing a huge body, then
//	     each RTSP message base64-encoded (padded per message, so '=' may
//	     appear mid-stream); the server never answers it
//
// Both arrive on the RTSP port; the first bytes tell them apart from RTSP
// ("GET " or "POST"). The pair is one logical connection: requests come
// in on the POST and are answered on the GET. Clients may close the POST
// after each message and open another with the same cookie.

// maxHTTPHeader bounds the HTTP header of a tunnel half.
const maxHTTPHeader = 8 << 10

// tunnelKind says what the first bytes of a connection are.
type tunnelKind int

const (
	notHTTP tunnelKind = iota
	needMore
	httpTunnel
)

// sniffHTTP looks at the first bytes of a connection.
func sniffHTTP(b []byte) tunnelKind {
	for _, p := range []string{"GET ", "POST "} {
		n := min(len(b), len(p))
		if string(b[:n]) == p[:n] {
			if n < len(p) {
				return needMore
			}
			return httpTunnel
		}
	}
	return notHTTP
}

// TunnelHalf is the parsed header of one half of a tunnel.
type TunnelHalf struct {
	Post   bool
	Cookie string
	Minor  string // HTTP minor version, echoed in the answer
}

// ParseTunnelHalf parses the HTTP header of a tunnel half at the start of
// b: ErrIncomplete, a *ParseError, or the half and the header's length.
func ParseTunnelHalf(b []byte) (TunnelHalf, int, error) {
	var hh TunnelHalf
	end, body := headerEnd(b, maxHTTPHeader)
	if end < 0 {
		if len(b) >= maxHTTPHeader {
			return hh, 0, parseErr(400, "HTTP header larger than %d bytes", maxHTTPHeader)
		}
		return hh, 0, ErrIncomplete
	}
	line, h, err := parseHead(b[:end])
	if err != nil {
		return hh, 0, err
	}
	f := bytes.Fields(line)
	if len(f) != 3 || !bytes.HasPrefix(f[2], []byte("HTTP/1.")) {
		return hh, 0, parseErr(400, "malformed HTTP request line")
	}
	hh.Minor = string(f[2][len("HTTP/1."):])
	if hh.Minor != "0" && hh.Minor != "1" {
		hh.Minor = "0"
	}
	switch string(f[0]) {
	case "GET":
	case "POST":
		hh.Post = true
	default:
		return hh, 0, parseErr(405, "only GET and POST tunnel RTSP")
	}
	hh.Cookie = strings.TrimSpace(h.Get("x-sessioncookie"))
	if !validCookie(hh.Cookie) {
		return hh, 0, parseErr(400, "RTSP over HTTP needs an x-sessioncookie")
	}
	// The content type is what says "tunnel"; a plain browser GET is not.
	ct := h.Get("Accept")
	if hh.Post {
		ct = h.Get("Content-Type")
	}
	if !strings.Contains(strings.ToLower(ct), "application/x-rtsp-tunnelled") {
		return hh, 0, parseErr(400, "not an RTSP tunnel (application/x-rtsp-tunnelled)")
	}
	return hh, body, nil
}

func validCookie(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// tunnelAnswer is the server's half: an HTTP header with no length, the
// rest of the connection being its body.
func tunnelAnswer(minor string) []byte {
	return []byte("HTTP/1." + minor + " 200 OK\r\n" +
		"Server: " + userAgent + "\r\n" +
		"Connection: close\r\n" +
		"Cache-Control: no-cache\r\n" +
		"Pragma: no-cache\r\n" +
		"Content-Type: application/x-rtsp-tunnelled\r\n\r\n")
}

// httpError is the answer to a tunnel half the gateway refuses.
func httpError(status int) []byte {
	text := map[int]string{400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}[status]
	if text == "" {
		status, text = 400, "Bad Request"
	}
	return []byte("HTTP/1.0 " + itoa(status) + " " + text + "\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// ErrBadBase64 is returned for a POST body that is not base64.
var ErrBadBase64 = errors.New("rtsp: HTTP tunnel body is not base64")

// Base64Stream decodes the body of a tunnel's POST half as it arrives in
// arbitrary pieces: groups of four characters, whitespace ignored, and
// padding allowed at the end of any group, since clients encode each
// message on its own.
type Base64Stream struct {
	pend [4]byte
	n    int
}

// Decode appends the bytes of src's complete groups to dst; a partial
// group waits for the next call.
func (d *Base64Stream) Decode(dst, src []byte) ([]byte, error) {
	var out [3]byte
	for _, c := range src {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		d.pend[d.n] = c
		d.n++
		if d.n < 4 {
			continue
		}
		d.n = 0
		if d.pend[0] == '=' || d.pend[1] == '=' || (d.pend[2] == '=' && d.pend[3] != '=') {
			return dst, ErrBadBase64
		}
		k, err := base64.StdEncoding.Decode(out[:], d.pend[:])
		if err != nil {
			return dst, ErrBadBase64
		}
		dst = append(dst, out[:k]...)
	}
	return dst, nil
}

// registerTunnel ties a cookie to the logical connection of its GET half.
func (g *Gateway) registerTunnel(cookie string, c *clientConn) bool {
	g.tunMu.Lock()
	defer g.tunMu.Unlock()
	if _, taken := g.tunnels[cookie]; taken {
		return false
	}
	g.tunnels[cookie] = c
	return true
}

func (g *Gateway) lookupTunnel(cookie string) *clientConn {
	g.tunMu.Lock()
	defer g.tunMu.Unlock()
	return g.tunnels[cookie]
}

func (g *Gateway) unregisterTunnel(cookie string, c *clientConn) {
	g.tunMu.Lock()
	defer g.tunMu.Unlock()
	if g.tunnels[cookie] == c {
		delete(g.tunnels, cookie)
	}
}

// itemFeeder parses items out of a byte stream that arrives in pieces and
// is not the listener's own buffer (a tunnel's decoded POST body).
type itemFeeder struct {
	buf []byte
	lim Limits
}

// feed appends b and hands each complete item to emit (frames copied).
func (f *itemFeeder) feed(b []byte, emit func(Item) bool) error {
	f.buf = append(f.buf, b...)
	off := 0
	defer func() {
		f.buf = f.buf[:copy(f.buf, f.buf[off:])]
	}()
	for off < len(f.buf) {
		it, n, err := ParseItem(f.buf[off:], f.lim)
		if errors.Is(err, ErrIncomplete) {
			off += n
			break
		}
		if err != nil {
			return err
		}
		off += n
		if it.Kind == KindFrame {
			it.Frame = bytes.Clone(it.Frame)
		}
		if !emit(it) {
			return nil
		}
	}
	if len(f.buf)-off > FrameHeaderLen+MaxFramePayload+f.lim.MaxHeaderBytes+f.lim.MaxBody {
		return parseErr(400, "item too large")
	}
	return nil
}
