package rtsp

import (
	"errors"
	"strconv"
	"strings"
)

// Transport is one transport-spec of a Transport header (RFC 2326
// §12.39, RFC 7826 §18.54): "RTP/AVP/TCP;unicast;interleaved=0-1". The
// parameters keep their order and spelling, so a spec the gateway does
// not need to change goes back out exactly as it came.
type Transport struct {
	Spec   string // "RTP/AVP", "RTP/AVP/TCP", "RTP/AVPF/UDP", …
	Params []Param
}

// Param is one ";name[=value]" of a transport-spec.
type Param struct {
	Name, Value string
	HasValue    bool
}

// ErrBadTransport is returned for a Transport header the gateway cannot
// read.
var ErrBadTransport = errors.New("rtsp: malformed Transport header")

// ParseTransports parses a Transport header: a comma-separated list of
// alternatives in the client's order of preference.
func ParseTransports(v string) ([]Transport, error) {
	var out []Transport
	for _, alt := range splitOutsideQuotes(v, ',') {
		alt = strings.TrimSpace(alt)
		if alt == "" {
			continue
		}
		parts := splitOutsideQuotes(alt, ';')
		t := Transport{Spec: strings.TrimSpace(parts[0])}
		if t.Spec == "" || strings.ContainsAny(t.Spec, " \t=") {
			return nil, ErrBadTransport
		}
		for _, p := range parts[1:] {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			name, val, has := strings.Cut(p, "=")
			t.Params = append(t.Params, Param{Name: strings.TrimSpace(name), Value: strings.TrimSpace(val), HasValue: has})
		}
		out = append(out, t)
		if len(out) > 16 {
			return nil, ErrBadTransport
		}
	}
	if len(out) == 0 {
		return nil, ErrBadTransport
	}
	return out, nil
}

// splitOutsideQuotes splits s at sep, except inside double quotes (RFC
// 7826 allows quoted addresses in dest_addr).
func splitOutsideQuotes(s string, sep byte) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case sep:
			if !quoted {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// Profile is the spec without its lower transport: "RTP/AVP".
func (t Transport) Profile() string {
	parts := strings.Split(t.Spec, "/")
	if len(parts) >= 3 {
		return strings.Join(parts[:2], "/")
	}
	return t.Spec
}

// Lower is the lower transport, "TCP" or "UDP" (the default, RFC 2326
// §12.39).
func (t Transport) Lower() string {
	parts := strings.Split(t.Spec, "/")
	if len(parts) >= 3 {
		return strings.ToUpper(parts[2])
	}
	return "UDP"
}

// IsTCP reports whether t asks for interleaved TCP. A spec that names UDP
// but carries interleaved= is read as TCP: some clients write it so.
func (t Transport) IsTCP() bool {
	if t.Lower() == "TCP" {
		return true
	}
	_, ok := t.Get("interleaved")
	return ok
}

// IsMulticast reports whether t asks for multicast.
func (t Transport) IsMulticast() bool {
	for _, p := range t.Params {
		if strings.EqualFold(p.Name, "multicast") {
			return true
		}
	}
	return false
}

// Get returns the value of the first parameter called name.
func (t Transport) Get(name string) (string, bool) {
	for _, p := range t.Params {
		if strings.EqualFold(p.Name, name) {
			return p.Value, true
		}
	}
	return "", false
}

// Set sets a parameter, in place if present, else appended.
func (t *Transport) Set(name, value string) {
	for i, p := range t.Params {
		if strings.EqualFold(p.Name, name) {
			t.Params[i].Value, t.Params[i].HasValue = value, true
			return
		}
	}
	t.Params = append(t.Params, Param{Name: name, Value: value, HasValue: true})
}

// Del removes every parameter called name.
func (t *Transport) Del(name string) {
	out := t.Params[:0]
	for _, p := range t.Params {
		if !strings.EqualFold(p.Name, name) {
			out = append(out, p)
		}
	}
	t.Params = out
}

// Clone returns a deep copy.
func (t Transport) Clone() Transport {
	t.Params = append([]Param(nil), t.Params...)
	return t
}

// Ports returns a port pair parameter (interleaved, client_port,
// server_port). A single number n stands for n-(n+1), as RFC 2326 §12.39
// says of interleaved and clients write of ports too.
func (t Transport) Ports(name string) (a, b int, ok bool) {
	v, ok := t.Get(name)
	if !ok {
		return 0, 0, false
	}
	return parseRange(v)
}

func parseRange(v string) (a, b int, ok bool) {
	x, y, has := strings.Cut(v, "-")
	a, err := strconv.Atoi(strings.TrimSpace(x))
	if err != nil || a < 0 || a > 65535 {
		return 0, 0, false
	}
	if !has {
		return a, a + 1, true
	}
	b, err = strconv.Atoi(strings.TrimSpace(y))
	if err != nil || b < 0 || b > 65535 {
		return 0, 0, false
	}
	return a, b, true
}

// String is the wire form of t.
func (t Transport) String() string {
	var b strings.Builder
	b.WriteString(t.Spec)
	for _, p := range t.Params {
		b.WriteByte(';')
		b.WriteString(p.Name)
		if p.HasValue {
			b.WriteByte('=')
			b.WriteString(p.Value)
		}
	}
	return b.String()
}

// Session is a Session header (RFC 2326 §12.37): the id a server gave,
// and the timeout after which it forgets an idle session.
type Session struct {
	ID      string
	Timeout int // seconds; 0 when the header names none (then 60, §12.37)
}

// DefaultSessionTimeout is RFC 2326's default session timeout.
const DefaultSessionTimeout = 60

// ParseSession parses a Session header value.
func ParseSession(v string) (Session, bool) {
	parts := strings.Split(v, ";")
	s := Session{ID: strings.TrimSpace(parts[0])}
	if s.ID == "" {
		return s, false
	}
	for _, p := range parts[1:] {
		name, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(strings.TrimSpace(name), "timeout") {
			if n, err := strconv.Atoi(strings.TrimSpace(val)); err == nil && n > 0 {
				s.Timeout = n
			}
		}
	}
	return s, true
}

// TimeoutOrDefault is the session timeout in seconds.
func (s Session) TimeoutOrDefault() int {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return DefaultSessionTimeout
}

// RewriteRTPInfo applies fn to every url= of an RTP-Info header (RFC 2326
// §12.33: "url=rtsp://…/trackID=1;seq=1;rtptime=0, url=…"). The other
// parameters are kept as they are.
func RewriteRTPInfo(v string, fn func(string) string) string {
	var b strings.Builder
	for i, stream := range splitRTPInfo(v) {
		if i > 0 {
			b.WriteByte(',')
		}
		for j, p := range strings.Split(stream, ";") {
			if j > 0 {
				b.WriteByte(';')
			}
			lead := p[:len(p)-len(strings.TrimLeft(p, " \t"))]
			name, val, ok := strings.Cut(strings.TrimLeft(p, " \t"), "=")
			if ok && strings.EqualFold(name, "url") {
				quoted := len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"'
				if quoted {
					val = `"` + fn(val[1:len(val)-1]) + `"`
				} else {
					val = fn(val)
				}
				b.WriteString(lead + name + "=" + val)
				continue
			}
			b.WriteString(p)
		}
	}
	return b.String()
}

// splitRTPInfo splits an RTP-Info value into its per-stream parts. A comma
// separates streams only where the next part starts with url=: camera URLs
// carry commas in their queries often enough (Dahua's
// "?channel=1&subtype=0" does not, but others do) that a plain split
// would cut URLs apart.
func splitRTPInfo(v string) []string {
	var out []string
	start := 0
	for i := 0; i < len(v); i++ {
		if v[i] != ',' {
			continue
		}
		rest := strings.TrimLeft(v[i+1:], " \t")
		if len(rest) >= 4 && strings.EqualFold(rest[:4], "url=") {
			out = append(out, v[start:i])
			start = i + 1
		}
	}
	return append(out, v[start:])
}
