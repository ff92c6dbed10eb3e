package httpauth

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"math"
	"strings"
	"sync"
)

// Client answers challenges for one set of credentials against one server
// (one camera). The zero value plus Username and Password is ready to use.
// Its methods are safe for concurrent use; Username and Password must not
// change while they run, and a Client must not be copied after first use.
//
// A Client remembers the last challenge, so after one 401 it can put
// credentials on every later request before sending it ("preemptive"
// authorization): Digest lets the client reuse a nonce as long as each use
// carries a higher nonce count (nc), which is what guards against replay.
// That matters for large bodies. Without it, a 200 MB firmware upload
// through the browser proxy would go out bare, meet a 401, and have to be
// sent again, so the relay would have to buffer all 200 MB to replay it
// (the browser cannot resend: the proxy, not the browser, answered the
// challenge). With the nonce of an earlier exchange and nc+1, the upload
// streams through on the first try. If the server has expired the nonce
// meanwhile it answers 401 stale=true; only then must the body be replayed
// or the error passed on.
//
// Servers differ in how strict they are about nc: some want exactly the
// next number. Concurrent requests through one Client get increasing nc in
// the order they call Authorization, but may reach the server in another
// order; such a server rejects the overtaken ones with 401, and the caller
// retries with a fresh challenge as for any 401.
type Client struct {
	Username, Password string

	mu sync.Mutex
	ch Challenge
	nc uint32 // nonce count already used with ch.Nonce

	// cnonce returns the client nonce of one request; nil means 128 bits
	// from crypto/rand. Tests set it to reproduce published vectors.
	cnonce func() string
}

// SetChallenge makes ch the challenge later Authorization calls answer,
// typically the result of ChallengeFromResponse on a 401. The nonce count
// restarts at 1 only when the nonce changes: a server that repeats a
// nonce it has already seen nc values for would reject a repeated nc as a
// replay.
func (c *Client) SetChallenge(ch Challenge) {
	ch.QOP = append([]string(nil), ch.QOP...) // the caller may reuse its slice
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch.Scheme != c.ch.Scheme || ch.Nonce != c.ch.Nonce || ch.Realm != c.ch.Realm {
		c.nc = 0
	}
	c.ch = ch
}

// HasChallenge reports whether SetChallenge was called, i.e. whether
// Authorization can produce a value before the server asks for one.
func (c *Client) HasChallenge() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ch.Scheme != ""
}

// Authorization returns the value of the Authorization header for one
// request answering the current challenge. Each Digest call uses the next
// nonce count (nc, 8 hex digits) and a fresh cnonce, so every call must be
// for a request actually sent.
//
// uri is the request-target exactly as it goes on the wire to the camera:
// path and raw query of the outgoing request (http.Request.URL.RequestURI()
// of the request the relay sends), and for RTSP the absolute rtsp:// URL of
// the request line, track suffix included. Digest hashes it and RFC 7616
// §3.4.6 has the server check it against its request line, so it must be
// the camera's path, not the one the browser used to reach the relay's
// proxy (those differ by the proxy prefix) and not a decoded or
// re-encoded form of it.
//
// body matters only when the challenge offers qop=auth-int and not
// qop=auth: auth-int hashes the request body, so the caller must then pass
// the complete body (an empty, non-nil slice for none); with a nil body
// Authorization returns ErrBodyRequired. Whenever qop=auth is offered it is
// used, and the body is neither needed nor read, so it can stream.
func (c *Client) Authorization(method, uri string, body []byte) (string, error) {
	if hasCTL(uri) || hasCTL(method) {
		return "", fmt.Errorf("%w: control character in method or request-target", ErrInvalid)
	}
	c.mu.Lock()
	ch := c.ch
	switch ch.Scheme {
	case "":
		c.mu.Unlock()
		return "", ErrNoChallenge
	case "Basic":
		c.mu.Unlock()
		return basic(c.Username, c.Password)
	case "Digest":
	default:
		c.mu.Unlock()
		return "", fmt.Errorf("%w: scheme %q", ErrUnsupported, ch.Scheme)
	}
	alg, qop, err := digestParams(ch, body != nil)
	if err == nil && hasCTL(c.Username) {
		err = fmt.Errorf("%w: control character in user name", ErrInvalid)
	}
	if err == nil && c.nc == math.MaxUint32 {
		err = fmt.Errorf("%w: nonce count exhausted, a new challenge is needed", ErrInvalid)
	}
	if err != nil {
		c.mu.Unlock()
		return "", err
	}
	c.nc++
	nc := c.nc
	newCnonce := c.cnonce
	user, pass := c.Username, c.Password
	c.mu.Unlock()

	var cnonce string
	if qop != "" {
		if newCnonce != nil {
			cnonce = newCnonce()
		} else {
			cnonce = rand.Text()
		}
	}
	h := func(parts ...string) string {
		hh := alg.new()
		for i, p := range parts {
			if i > 0 {
				hh.Write([]byte{':'})
			}
			hh.Write([]byte(p))
		}
		return hex.EncodeToString(hh.Sum(nil))
	}
	ha1 := h(user, ch.Realm, pass)
	if alg.sess {
		// RFC 7616 §3.4.2. The session key uses this request's cnonce, as
		// curl, browsers and the servers checking them do.
		ha1 = h(ha1, ch.Nonce, cnonce)
	}
	var ha2 string
	if strings.EqualFold(qop, "auth-int") {
		bh := alg.new()
		bh.Write(body) // no copy: the body may be large
		ha2 = h(method, uri, hex.EncodeToString(bh.Sum(nil)))
	} else {
		ha2 = h(method, uri)
	}
	ncs := fmt.Sprintf("%08x", nc)
	var response string
	if qop != "" {
		response = h(ha1, ch.Nonce, ncs, cnonce, qop, ha2)
	} else {
		response = h(ha1, ch.Nonce, ha2) // RFC 2069
	}

	var b strings.Builder
	b.WriteString("Digest username=")
	if ch.Userhash {
		writeQuoted(&b, h(user, ch.Realm))
	} else {
		writeQuoted(&b, user)
	}
	b.WriteString(", realm=")
	writeQuoted(&b, ch.Realm)
	b.WriteString(", uri=")
	writeQuoted(&b, uri)
	if ch.Algorithm != "" { // echo it only if the server named it, as curl does
		b.WriteString(", algorithm=")
		b.WriteString(ch.Algorithm)
	}
	b.WriteString(", nonce=")
	writeQuoted(&b, ch.Nonce)
	if qop != "" {
		b.WriteString(", nc=")
		b.WriteString(ncs)
		b.WriteString(", cnonce=")
		writeQuoted(&b, cnonce)
		b.WriteString(", qop=")
		b.WriteString(qop)
	}
	b.WriteString(", response=")
	writeQuoted(&b, response)
	if ch.Opaque != "" {
		b.WriteString(", opaque=")
		writeQuoted(&b, ch.Opaque)
	}
	if ch.Userhash {
		b.WriteString(", userhash=true")
	}
	return b.String(), nil
}

func basic(user, pass string) (string, error) {
	// RFC 7617 §2: the user-id cannot contain a colon, the first colon
	// separates it from the password.
	if strings.Contains(user, ":") {
		return "", fmt.Errorf("%w: colon in Basic user name", ErrInvalid)
	}
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass)), nil
}

type algorithm struct {
	new  func() hash.Hash
	sess bool
	rank int // for Pick
}

// lookupAlgorithm maps a Digest algorithm name (case-insensitive; empty is
// MD5) to its hash.
func lookupAlgorithm(name string) (algorithm, bool) {
	base, sess := name, false
	if len(name) > 5 && strings.EqualFold(name[len(name)-5:], "-sess") {
		base, sess = name[:len(name)-5], true
	}
	switch {
	case name == "" || strings.EqualFold(base, "MD5"):
		return algorithm{md5.New, sess, 1}, true
	case strings.EqualFold(base, "SHA-256"):
		return algorithm{sha256.New, sess, 3}, true
	case strings.EqualFold(base, "SHA-512-256"):
		return algorithm{sha512.New512_256, sess, 2}, true
	}
	return algorithm{}, false
}

// digestParams checks that ch can be answered and chooses the qop: "auth"
// if offered, else "auth-int" if offered and the body is in hand, else none
// for an RFC 2069 challenge. The returned qop keeps the server's spelling.
func digestParams(ch Challenge, haveBody bool) (algorithm, string, error) {
	alg, ok := lookupAlgorithm(ch.Algorithm)
	if !ok {
		return alg, "", fmt.Errorf("%w: algorithm %q", ErrUnsupported, ch.Algorithm)
	}
	if ch.Nonce == "" {
		return alg, "", fmt.Errorf("%w: Digest challenge without nonce", ErrUnsupported)
	}
	if hasCTL(ch.Realm) || hasCTL(ch.Nonce) || hasCTL(ch.Opaque) {
		return alg, "", fmt.Errorf("%w: control character in challenge", ErrInvalid)
	}
	var qop string
	for _, q := range ch.QOP {
		if strings.EqualFold(q, "auth") {
			qop = q
			break
		}
	}
	if qop == "" && len(ch.QOP) > 0 {
		if !hasQOP(ch.QOP, "auth-int") {
			return alg, "", fmt.Errorf("%w: qop %q", ErrUnsupported, strings.Join(ch.QOP, ","))
		}
		if !haveBody {
			return alg, "", ErrBodyRequired
		}
		for _, q := range ch.QOP {
			if strings.EqualFold(q, "auth-int") {
				qop = q
			}
		}
	}
	if qop == "" && alg.sess {
		// The session key hashes a cnonce, and without qop there is no
		// cnonce field to tell the server which.
		return alg, "", fmt.Errorf("%w: algorithm %s without qop", ErrUnsupported, ch.Algorithm)
	}
	return alg, qop, nil
}

// writeQuoted writes s as a quoted-string, escaping '"' and '\'.
func writeQuoted(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
}
