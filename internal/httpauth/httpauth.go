// Package httpauth is the client side of HTTP and RTSP authentication: it
// lets the relay answer a camera's Basic or Digest challenge itself with
// stored credentials, so that neither the browser behind the proxy nor the
// RTSP client behind the gateway ever sees the camera's password.
//
// RTSP reuses HTTP's WWW-Authenticate and Authorization syntax (RFC 2326
// appendix D, RFC 7826 §19), so one implementation serves the browser proxy
// and the RTSP gateway. The package knows nothing about transports: it
// parses challenges (ParseChallenges, ChallengeFromResponse), chooses one
// (Pick) and computes header values (Client.Authorization).
//
// A typical exchange with a camera:
//
//	resp := send(req)                         // no credentials yet
//	if resp.StatusCode == 401 {
//		ch, ok := httpauth.ChallengeFromResponse(resp.Header)
//		if !ok { /* no scheme we can answer: pass the 401 on */ }
//		c.SetChallenge(ch)
//		v, err := c.Authorization(req.Method, req.URL.RequestURI(), nil)
//		req.Header.Set("Authorization", v)
//		resp = send(req)                      // only if the body can be replayed
//	}
//	// later requests: c.HasChallenge() → set Authorization before sending
//
// A 401 to a request that already carried credentials for the current
// nonce means wrong credentials unless the new challenge says stale=true
// (the nonce merely expired); callers retry at most once per fresh nonce so
// a wrong password cannot loop.
//
// References: RFC 7235 (framework), RFC 7617 (Basic), RFC 7616 (Digest,
// with SHA-256 and userhash), RFC 2617 (Digest with MD5 and qop), RFC 2069
// (Digest without qop, still spoken by old cameras).
package httpauth

import (
	"errors"
	"net/http"
	"strings"
)

// Errors returned by this package; test with errors.Is.
var (
	// ErrMalformed: a WWW-Authenticate value does not follow RFC 7235's
	// grammar, or breaks one of the bounds that keep parsing cheap.
	ErrMalformed = errors.New("httpauth: malformed WWW-Authenticate")
	// ErrNoChallenge: Authorization was called before SetChallenge.
	ErrNoChallenge = errors.New("httpauth: no challenge to answer")
	// ErrUnsupported: the challenge asks for a scheme, algorithm or qop
	// this package does not implement. Pick never returns such a challenge.
	ErrUnsupported = errors.New("httpauth: unsupported challenge")
	// ErrBodyRequired: the challenge offers only qop=auth-int, which hashes
	// the request body, and Authorization was given a nil body.
	ErrBodyRequired = errors.New("httpauth: qop=auth-int needs the request body")
	// ErrInvalid: the credentials, the challenge or the request-target
	// cannot be put into a header safely (control characters, a colon in a
	// Basic user name, an exhausted nonce count).
	ErrInvalid = errors.New("httpauth: value cannot be sent in a header")
)

// Challenge is one Basic or Digest challenge from a WWW-Authenticate header.
// Values are unquoted (quoted-pairs resolved); names and scheme are
// matched case-insensitively when parsing.
type Challenge struct {
	// Scheme is "Basic" or "Digest" (canonical spelling whatever the server
	// sent). Other schemes are never returned by ParseChallenges.
	Scheme string
	Realm  string
	// Nonce, Opaque and Algorithm are Digest only. Algorithm keeps the
	// server's spelling because it is echoed back; empty means MD5.
	Nonce, Opaque, Algorithm string
	// QOP lists the qop values the server offers (qop="auth,auth-int"),
	// empty for an RFC 2069 challenge.
	QOP []string
	// Stale reports stale=true: the previous nonce expired, the credentials
	// were fine, so retrying with this challenge is expected to work.
	Stale bool
	// Userhash asks the client to send H(username:realm) instead of the
	// user name (RFC 7616 §3.4.4).
	Userhash bool
	// Charset is the charset parameter ("UTF-8" is the only value RFCs
	// allow). Informational: user names and passwords are sent as the Go
	// strings' bytes, which is UTF-8 in practice.
	Charset string
}

// Pick returns the strongest challenge this package can answer:
// Digest SHA-256 > Digest SHA-512-256 > Digest MD5 > Basic (each -sess
// variant ranks with its base algorithm). Among equal algorithms, a
// challenge offering qop=auth wins over an RFC 2069 one (no qop, so no
// cnonce and no nonce count), which wins over one offering only auth-int
// (that needs the body in hand). Ties go to the first, which is the server's
// order of preference.
//
// SHA-512-256 ranks below SHA-256 on purpose: for Digest the two are
// equally strong, but "SHA-512-256" is easy to get wrong as SHA-512 cut to
// 256 bits (RFC 7616's own example in §3.9.2 is computed that way), and a
// server that does so rejects a correct answer where SHA-256 would pass.
//
// Basic is chosen only when nothing else is offered; it sends the password
// base64-encoded, i.e. in clear to anyone on the camera's network.
func Pick(chs []Challenge) (Challenge, bool) {
	best, bestRank := -1, 0
	for i, ch := range chs {
		if r := rank(ch); r > bestRank {
			best, bestRank = i, r
		}
	}
	if best < 0 {
		return Challenge{}, false
	}
	return chs[best], true
}

// rank scores a challenge for Pick; 0 means it cannot be answered.
func rank(ch Challenge) int {
	switch ch.Scheme {
	case "Basic":
		return 1
	case "Digest":
	default:
		return 0
	}
	alg, ok := lookupAlgorithm(ch.Algorithm)
	if !ok || ch.Nonce == "" || hasCTL(ch.Realm) || hasCTL(ch.Nonce) || hasCTL(ch.Opaque) {
		return 0
	}
	var q int
	switch {
	case hasQOP(ch.QOP, "auth"):
		q = 3
	case len(ch.QOP) == 0:
		if alg.sess { // -sess hashes a cnonce, which RFC 2069 has no field for
			return 0
		}
		q = 2
	case hasQOP(ch.QOP, "auth-int"):
		q = 1
	default:
		return 0
	}
	return alg.rank*10 + q
}

// ChallengeFromResponse parses the WWW-Authenticate headers of a 401 (or, for
// RTSP, a 401 converted to an http.Header) and picks the strongest
// challenge this package can answer. A malformed part does not hide the
// well-formed challenges around it (see ParseChallenges): a camera that
// appends garbage after a good Digest challenge is still answered.
func ChallengeFromResponse(h http.Header) (Challenge, bool) {
	chs, _ := ParseChallenges(h.Values("WWW-Authenticate"))
	return Pick(chs)
}

func hasQOP(qops []string, want string) bool {
	for _, q := range qops {
		if strings.EqualFold(q, want) {
			return true
		}
	}
	return false
}

// hasCTL reports whether s holds a control character (other than HTAB):
// such a value would let a hostile server or caller inject header lines
// into the request the relay writes.
func hasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; (b < 0x20 && b != '\t') || b == 0x7f {
			return true
		}
	}
	return false
}
