package rtsp

import (
	"errors"
	"net"
	"strconv"
	"strings"
)

// GrantParam is the query parameter that carries a gateway grant. The
// gateway removes it before anything reaches the camera.
const GrantParam = "nd_grant"

// ErrBadURL is returned for request URLs the gateway cannot route.
var ErrBadURL = errors.New("rtsp: request URL is not rtsp://host/{handle}/…")

// relayURL is a request URL of the gateway, taken apart:
//
//	rtsp://relay.example.com:9554/h-RkN3Lzm9TgD8e2Bp7Q1xWA/Streaming/Channels/101?nd_grant=…
//	       └──── Authority ─────┘ └────── Handle ───────┘└────────── Rest ─────────┘
//
// Rest is everything after the handle, kept as text (the camera's path and
// query, which the gateway does not decode or re-encode: Dahua's
// "/cam/realmonitor?channel=1&subtype=0/trackID=0" puts a path segment
// after the query), minus the grant parameter.
type relayURL struct {
	Scheme    string // as the client wrote it
	Authority string // host[:port], userinfo removed
	Handle    string
	Rest      string // "", "/…" or "?…"
	Grant     string
}

// parseRelayURL parses an absolute request URL of the gateway.
func parseRelayURL(s string) (relayURL, error) {
	var u relayURL
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || !isRTSPScheme(scheme) {
		return u, ErrBadURL
	}
	u.Scheme = scheme
	i := strings.IndexAny(rest, "/?")
	if i < 0 {
		return u, ErrBadURL
	}
	u.Authority = rest[:i]
	if at := strings.LastIndexByte(u.Authority, '@'); at >= 0 {
		// Clients put camera logins in URLs; none of it is ours to pass on.
		u.Authority = u.Authority[at+1:]
	}
	if u.Authority == "" || rest[i] != '/' {
		return u, ErrBadURL
	}
	rest = rest[i+1:]
	j := strings.IndexAny(rest, "/?")
	if j < 0 {
		j = len(rest)
	}
	u.Handle, rest = rest[:j], rest[j:]
	if u.Handle == "" {
		return u, ErrBadURL
	}
	u.Rest, u.Grant = stripGrant(rest)
	return u, nil
}

func isRTSPScheme(s string) bool {
	return strings.EqualFold(s, "rtsp") || strings.EqualFold(s, "rtsps") || strings.EqualFold(s, "rtspu")
}

// Base is the relay URL of the handle's root as this client reaches it:
// what camera URLs are rewritten to in responses.
func (u relayURL) Base() string { return u.Scheme + "://" + u.Authority + "/" + u.Handle }

// Camera is the URL the camera sees: its own host and port, the rest
// untouched.
func (u relayURL) Camera(camAuthority string) string { return "rtsp://" + camAuthority + u.Rest }

// Key identifies what a URL asks of a camera, for sharing one camera
// session among viewers: the camera's path and query.
func (u relayURL) Key() string { return u.Rest }

// stripGrant removes the grant parameter from the text after the handle
// and returns the grant. The value is base64url and '.', so it ends at the
// first other byte: a client that appended a track to the URL it was
// given ("…?nd_grant=XYZ/trackID=1") keeps the track.
func stripGrant(rest string) (out, grant string) {
	out = rest
	for { // every occurrence goes: each pass makes out shorter
		i := strings.Index(out, GrantParam+"=")
		for i > 0 && out[i-1] != '?' && out[i-1] != '&' {
			k := strings.Index(out[i+1:], GrantParam+"=")
			if k < 0 {
				i = -1
				break
			}
			i += 1 + k
		}
		if i <= 0 {
			return out, grant
		}
		j := i + len(GrantParam) + 1
		for j < len(out) && isGrantChar(out[j]) {
			j++
		}
		if grant == "" {
			grant = out[i+len(GrantParam)+1 : j]
		}
		sep := out[i-1]
		switch {
		case sep == '?' && j < len(out) && out[j] == '&':
			out = out[:i] + out[j+1:] // "?nd_grant=X&a=1" → "?a=1"
		case sep == '?':
			out = out[:i-1] + out[j:] // "?nd_grant=X" → "", "?nd_grant=X/trackID=1" → "/trackID=1"
		default:
			out = out[:i-1] + out[j:] // "&nd_grant=X" → ""
		}
	}
}

func isGrantChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' || c == '%'
}

// toRelay rewrites an absolute rtsp:// URL from the camera into the relay
// URL base+path. Every such URL is rewritten whatever host it names: a
// camera often names itself by an address the relay does not know (its
// other interface, the NAT's outside), and a URL through this handle can
// only ever reach this camera. Anything else (relative references, "*")
// is returned unchanged.
func ToRelay(u, base string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok || !isRTSPScheme(scheme) {
		return u
	}
	i := strings.IndexAny(rest, "/?")
	if i < 0 {
		return base
	}
	return base + rest[i:]
}

// toCamera rewrites an absolute relay URL of handle h into the camera's
// form; other strings are returned unchanged.
func toCamera(u, h, camAuthority string) string {
	ru, err := parseRelayURL(u)
	if err != nil || ru.Handle != h {
		return u
	}
	return ru.Camera(camAuthority)
}

// resolveControl resolves an SDP a=control value against the session's
// base URL (RFC 2326 §C.1.1). Relative controls are appended with a slash
// when the base lacks one, as every client does, rather than by RFC 3986
// resolution, which would drop the base's last segment: cameras write
// Content-Base without a trailing slash and expect exactly that.
func resolveControl(base, control string) string {
	control = strings.TrimSpace(control)
	switch {
	case control == "" || control == "*":
		return base
	case hasScheme(control):
		return control
	case strings.HasPrefix(control, "/"):
		scheme, rest, _ := strings.Cut(base, "://")
		if i := strings.IndexAny(rest, "/?"); i >= 0 {
			rest = rest[:i]
		}
		return scheme + "://" + rest + control
	case strings.HasSuffix(base, "/"):
		return base + control
	}
	return base + "/" + control
}

func hasScheme(s string) bool {
	scheme, _, ok := strings.Cut(s, "://")
	if !ok || scheme == "" {
		return false
	}
	for i := 0; i < len(scheme); i++ {
		c := scheme[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return true
}

// sameURL compares two URLs as servers compare SETUP targets: scheme
// case-insensitively and ignoring one trailing slash.
func sameURL(a, b string) bool {
	a, b = strings.TrimSuffix(a, "/"), strings.TrimSuffix(b, "/")
	sa, ra, oka := strings.Cut(a, "://")
	sb, rb, okb := strings.Cut(b, "://")
	if !oka || !okb {
		return a == b
	}
	return strings.EqualFold(sa, sb) && ra == rb
}

// Authority joins a host and port for a URL, bracketing IPv6.
func Authority(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// CameraURL is what the gateway does to every request line: it splits a
// gateway URL into its handle and grant and returns the URL the camera
// gets (its own host and port, the rest untouched, the grant removed).
func CameraURL(requestURL, camAuthority string) (handle, camera, grant string, err error) {
	u, err := parseRelayURL(requestURL)
	if err != nil {
		return "", "", "", err
	}
	return u.Handle, u.Camera(camAuthority), u.Grant, nil
}
