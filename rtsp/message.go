package rtsp

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Limits bound what one message may make the gateway hold in memory. The
// defaults fit every camera seen in the field with room to spare: the
// largest real SDPs (many tracks, ONVIF metadata, vendor attributes) are a
// few KiB, the largest headers (Digest challenges of several algorithms,
// long RTP-Info) well under 4 KiB.
type Limits struct {
	// MaxHeaderBytes bounds the start line plus the header block, CRLFs
	// included. A peer that sends more without an empty line is cut off:
	// without the bound, a slow trickle of header bytes would grow a
	// buffer without end (and gnet would happily buffer it, see listen_gnet.go).
	MaxHeaderBytes int
	// MaxBody bounds Content-Length.
	MaxBody int
}

// Default limits.
const (
	DefaultMaxHeaderBytes = 16 << 10
	DefaultMaxBody        = 256 << 10
	// maxFields bounds the number of header fields, so a message of many
	// tiny fields cannot cost more than a few allocations per byte.
	maxFields = 128
)

// DefaultLimits are the limits used when a field of Limits is zero.
var DefaultLimits = Limits{MaxHeaderBytes: DefaultMaxHeaderBytes, MaxBody: DefaultMaxBody}

func (l Limits) withDefaults() Limits {
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.MaxBody <= 0 {
		l.MaxBody = DefaultMaxBody
	}
	return l
}

// ErrIncomplete is returned by the parsers when the bytes end before the
// item does: read more and call again.
var ErrIncomplete = errors.New("rtsp: incomplete message")

// ParseError is a message the gateway refuses to read. Status is the RTSP
// status to answer a client with before closing (400, 413 or 414).
type ParseError struct {
	Status int
	Msg    string
}

func (e *ParseError) Error() string { return "rtsp: " + e.Msg }

func parseErr(status int, format string, args ...any) error {
	return &ParseError{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// Field is one header line. Names keep the peer's spelling: the gateway
// forwards what it does not need to change exactly as it came, since
// camera firmware is known to match header names case-sensitively.
type Field struct {
	Name, Value string
}

// Header is an ordered list of fields. Lookups are case-insensitive
// (RFC 2326 §4.2, RFC 7826 §5.2).
type Header []Field

// Get returns the value of the first field called name, or "".
func (h Header) Get(name string) string {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// Has reports whether a field called name is present.
func (h Header) Has(name string) bool {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return true
		}
	}
	return false
}

// Values returns the values of every field called name, in order.
func (h Header) Values(name string) []string {
	var vs []string
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			vs = append(vs, f.Value)
		}
	}
	return vs
}

// Set replaces the first field called name (keeping its position and
// spelling) and removes any others; without one, it appends.
func (h *Header) Set(name, value string) {
	found := false
	out := (*h)[:0]
	for _, f := range *h {
		if strings.EqualFold(f.Name, name) {
			if found {
				continue
			}
			found = true
			f.Value = value
		}
		out = append(out, f)
	}
	if !found {
		out = append(out, Field{name, value})
	}
	*h = out
}

// Add appends a field.
func (h *Header) Add(name, value string) { *h = append(*h, Field{name, value}) }

// Del removes every field called name.
func (h *Header) Del(name string) {
	out := (*h)[:0]
	for _, f := range *h {
		if !strings.EqualFold(f.Name, name) {
			out = append(out, f)
		}
	}
	*h = out
}

// Clone returns a copy that can be changed independently.
func (h Header) Clone() Header { return append(Header(nil), h...) }

// Request is an RTSP request. URL is the request-target exactly as sent
// ("*" or an absolute rtsp:// URL): the gateway rewrites it textually and
// never re-encodes what it does not touch.
type Request struct {
	Method string
	URL    string
	Proto  string // "RTSP/1.0" or "RTSP/2.0"
	Header Header
	Body   []byte
}

// Response is an RTSP response.
type Response struct {
	Proto      string
	StatusCode int
	Reason     string
	Header     Header
	Body       []byte
}

// CSeq returns the request's sequence number ("" if absent).
func (r *Request) CSeq() string { return r.Header.Get("CSeq") }

// AppendTo appends the wire form of r to b. Content-Length is set from
// Body (and removed for an empty body), whatever the header said.
func (r *Request) AppendTo(b []byte) []byte {
	proto := r.Proto
	if proto == "" {
		proto = "RTSP/1.0"
	}
	b = append(b, r.Method...)
	b = append(b, ' ')
	b = append(b, r.URL...)
	b = append(b, ' ')
	b = append(b, proto...)
	b = append(b, "\r\n"...)
	return appendHeaderBody(b, r.Header, r.Body)
}

// AppendTo appends the wire form of r to b, with Content-Length from Body.
func (r *Response) AppendTo(b []byte) []byte {
	proto := r.Proto
	if proto == "" {
		proto = "RTSP/1.0"
	}
	reason := r.Reason
	if reason == "" {
		reason = StatusText(r.StatusCode)
	}
	b = append(b, proto...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(r.StatusCode), 10)
	b = append(b, ' ')
	b = append(b, reason...)
	b = append(b, "\r\n"...)
	return appendHeaderBody(b, r.Header, r.Body)
}

func appendHeaderBody(b []byte, h Header, body []byte) []byte {
	for _, f := range h {
		if strings.EqualFold(f.Name, "Content-Length") {
			continue
		}
		b = append(b, f.Name...)
		b = append(b, ": "...)
		b = append(b, f.Value...)
		b = append(b, "\r\n"...)
	}
	if len(body) > 0 {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(body)), 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	return append(b, body...)
}

// ParseMessage parses one request or response at the start of b. It
// returns ErrIncomplete if b holds only part of it, a *ParseError if the
// bytes are not a message the gateway will read, and otherwise exactly one
// of req and resp with the bytes consumed. The message does not alias b.
//
// It is liberal where cameras are known to bend RFC 2326: bare LF line
// ends, folded header lines, a missing reason phrase, spaces around the
// colon. It is strict where leniency would be a risk: bounded header
// size and field count, one unambiguous Content-Length.
func ParseMessage(b []byte, lim Limits) (req *Request, resp *Response, n int, err error) {
	lim = lim.withDefaults()
	end, bodyStart := headerEnd(b, lim.MaxHeaderBytes)
	if end < 0 {
		if len(b) >= lim.MaxHeaderBytes {
			return nil, nil, 0, parseErr(400, "header larger than %d bytes", lim.MaxHeaderBytes)
		}
		return nil, nil, 0, ErrIncomplete
	}
	line, h, err := parseHead(b[:end])
	if err != nil {
		return nil, nil, 0, err
	}
	cl, err := contentLength(h, lim.MaxBody)
	if err != nil {
		return nil, nil, 0, err
	}
	if len(b)-bodyStart < cl {
		return nil, nil, 0, ErrIncomplete
	}
	var body []byte
	if cl > 0 {
		body = bytes.Clone(b[bodyStart : bodyStart+cl])
	}
	n = bodyStart + cl
	if bytes.HasPrefix(line, []byte("RTSP/")) {
		resp, err = parseStatusLine(line)
		if err != nil {
			return nil, nil, 0, err
		}
		resp.Header, resp.Body = h, body
		return nil, resp, n, nil
	}
	req, err = parseRequestLine(line)
	if err != nil {
		return nil, nil, 0, err
	}
	req.Header, req.Body = h, body
	return req, nil, n, nil
}

// parseHead splits a header block into its start line and fields.
func parseHead(head []byte) (line []byte, h Header, err error) {
	line, rest := cutLine(head)
	for len(rest) > 0 {
		var l []byte
		l, rest = cutLine(rest)
		if len(l) == 0 {
			continue
		}
		if l[0] == ' ' || l[0] == '\t' {
			// obs-fold (RFC 2326 §4.2 allows LWS continuation)
			if len(h) == 0 {
				return nil, nil, parseErr(400, "continuation line before any header")
			}
			h[len(h)-1].Value = strings.TrimSpace(h[len(h)-1].Value + " " + string(bytes.TrimSpace(l)))
			continue
		}
		i := bytes.IndexByte(l, ':')
		if i <= 0 {
			return nil, nil, parseErr(400, "header line without a name: %q", clip(l))
		}
		name := bytes.TrimSpace(l[:i])
		if !isToken(name) {
			return nil, nil, parseErr(400, "bad header name %q", clip(name))
		}
		if len(h) == maxFields {
			return nil, nil, parseErr(400, "more than %d header fields", maxFields)
		}
		h = append(h, Field{string(name), string(bytes.TrimSpace(l[i+1:]))})
	}
	return line, h, nil
}

// headerEnd finds the empty line that ends the header block within the
// first max bytes of b: it returns the end of the header lines and the
// start of the body, or -1.
func headerEnd(b []byte, max int) (end, body int) {
	for i := 0; i < len(b) && i < max; i++ {
		if b[i] != '\n' {
			continue
		}
		// b[i] ends a line; an empty line follows if the next is \n or \r\n.
		if i+1 < len(b) && b[i+1] == '\n' {
			return i + 1, i + 2
		}
		if i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n' {
			return i + 1, i + 3
		}
	}
	return -1, 0
}

// cutLine returns the first line of b without its line end, and the rest.
func cutLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return bytes.TrimSuffix(b, []byte("\r")), nil
	}
	return bytes.TrimSuffix(b[:i], []byte("\r")), b[i+1:]
}

func contentLength(h Header, max int) (int, error) {
	n := -1
	for _, f := range h {
		if !strings.EqualFold(f.Name, "Content-Length") {
			continue
		}
		v, err := strconv.Atoi(f.Value)
		if err != nil || v < 0 || !allDigits(f.Value) {
			return 0, parseErr(400, "bad Content-Length %q", clip([]byte(f.Value)))
		}
		if n >= 0 && v != n {
			// Two lengths: whichever we picked, a peer could smuggle a
			// message past whatever picked the other.
			return 0, parseErr(400, "conflicting Content-Length fields")
		}
		n = v
	}
	if n > max {
		return 0, parseErr(413, "body of %d bytes exceeds %d", n, max)
	}
	return max0(n), nil
}

func max0(n int) int {
	if n < 0 {
		return 0
	}
	return n
}

func allDigits(s string) bool {
	if s == "" || len(s) > 10 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func parseRequestLine(line []byte) (*Request, error) {
	f := bytes.Fields(line)
	if len(f) != 3 {
		return nil, parseErr(400, "malformed request line %q", clip(line))
	}
	if !isToken(f[0]) {
		return nil, parseErr(400, "bad method %q", clip(f[0]))
	}
	if !bytes.HasPrefix(f[2], []byte("RTSP/")) {
		return nil, parseErr(505, "not an RTSP request: %q", clip(f[2]))
	}
	if len(f[1]) > 4096 {
		return nil, parseErr(414, "request URL of %d bytes", len(f[1]))
	}
	for _, c := range f[1] {
		if c < 0x21 || c == 0x7f {
			return nil, parseErr(400, "control character in request URL")
		}
	}
	return &Request{Method: string(f[0]), URL: string(f[1]), Proto: string(f[2])}, nil
}

func parseStatusLine(line []byte) (*Response, error) {
	proto, rest, _ := bytes.Cut(line, []byte(" "))
	rest = bytes.TrimLeft(rest, " ")
	code, reason, _ := bytes.Cut(rest, []byte(" "))
	if len(code) != 3 || !allDigits(string(code)) {
		return nil, parseErr(400, "malformed status line %q", clip(line))
	}
	c, _ := strconv.Atoi(string(code))
	if c < 100 {
		return nil, parseErr(400, "malformed status line %q", clip(line))
	}
	return &Response{Proto: string(proto), StatusCode: c, Reason: string(bytes.TrimSpace(reason))}, nil
}

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c <= 0x20 || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}

func clip(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}

// StatusText is the reason phrase of an RTSP status (RFC 2326 §7.1.1,
// RFC 7826 §17).
func StatusText(code int) string {
	switch code {
	case 100:
		return "Continue"
	case 200:
		return "OK"
	case 301:
		return "Moved Permanently"
	case 302:
		return "Moved Temporarily"
	case 400:
		return "Bad Request"
	case 401:
		return "Unauthorized"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 408:
		return "Request Timeout"
	case 413:
		return "Request Entity Too Large"
	case 414:
		return "Request-URI Too Large"
	case 453:
		return "Not Enough Bandwidth"
	case 454:
		return "Session Not Found"
	case 455:
		return "Method Not Valid in This State"
	case 459:
		return "Aggregate Operation Not Allowed"
	case 461:
		return "Unsupported Transport"
	case 500:
		return "Internal Server Error"
	case 501:
		return "Not Implemented"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Gateway Timeout"
	case 505:
		return "RTSP Version Not Supported"
	}
	return "Status " + strconv.Itoa(code)
}
