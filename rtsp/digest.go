package rtsp

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"time"
)

// Digest logins of the gateway itself (RFC 2617 over RTSP, as RFC 2326
// §D.2 has it): a VMS keeps rtsp://user:secret@relay:9554/{handle}/… and
// the gateway checks the login before it dials anything. The user and
// secret are a per-integration credential of the relay, not a camera
// login: the camera never sees them.

// DigestRealm is the gateway's fixed Digest realm. A credential's stored
// form, HA1 = MD5(user:DigestRealm:secret), depends on it, so it never
// changes.
const DigestRealm = "nanodems"

// DigestBackend is a Backend that also takes Digest logins. It is a
// separate interface so that backends without credentials (tests,
// perf/rtspbench) keep answering grant URLs only.
type DigestBackend interface {
	// AuthorizeDigest looks user up and calls check with its HA1 (the hex
	// of MD5(user:DigestRealm:secret)); check says whether the client's
	// response was made with that secret. Then it checks that the user
	// may open handle h. Errors should be *Error: 401 for an unknown,
	// revoked or expired user or a failed check, 403 for a handle out of
	// the user's scope, 404 for an unknown handle. The backend must not
	// dial anything.
	AuthorizeDigest(ctx context.Context, h, user string, check func(ha1 string) bool) (Principal, error)
}

// nonceTTL is how long a nonce the gateway handed out is taken; a later
// response gets a new challenge with stale=true, which players answer
// without asking anyone for the secret again.
const nonceTTL = 5 * time.Minute

// digestAuth mints and checks the gateway's nonces: a timestamp and its
// HMAC under a key of the process, so a nonce needs no state and a forged
// or replayed-after-expiry one is refused.
type digestAuth struct{ key [32]byte }

func newDigestAuth() *digestAuth {
	d := &digestAuth{}
	rand.Read(d.key[:])
	return d
}

func (d *digestAuth) nonce(now time.Time) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(now.UnixNano()))
	m := hmac.New(sha256.New, d.key[:])
	m.Write(b[:])
	return hex.EncodeToString(b[:]) + hex.EncodeToString(m.Sum(nil)[:16])
}

// nonceState says whether n is one of the gateway's nonces and whether it
// is still fresh.
func (d *digestAuth) nonceState(n string, now time.Time) (ours, fresh bool) {
	raw, err := hex.DecodeString(n)
	if err != nil || len(raw) != 24 {
		return false, false
	}
	m := hmac.New(sha256.New, d.key[:])
	m.Write(raw[:8])
	if !hmac.Equal(m.Sum(nil)[:16], raw[8:]) {
		return false, false
	}
	at := time.Unix(0, int64(binary.BigEndian.Uint64(raw[:8])))
	return true, now.Sub(at) < nonceTTL && !at.After(now.Add(time.Minute))
}

// challenge is the WWW-Authenticate value of a 401 from the gateway. No
// qop is offered: every RTSP client that does Digest answers an RFC 2069
// challenge, not all of them answer qop=auth; a client that sends qop=auth
// anyway is checked with it.
func (d *digestAuth) challenge(now time.Time, stale bool) string {
	v := `Digest realm="` + DigestRealm + `", nonce="` + d.nonce(now) + `", algorithm=MD5`
	if stale {
		v += ", stale=true"
	}
	return v
}

// digestResponse is a client's Authorization: Digest … parsed.
type digestResponse struct {
	user, realm, nonce, uri, response, algorithm, qop, nc, cnonce string
}

var errNotDigest = errors.New("not a Digest authorization")

// parseDigest parses an Authorization header value of the Digest scheme.
func parseDigest(v string) (digestResponse, error) {
	var r digestResponse
	scheme, rest, _ := strings.Cut(strings.TrimSpace(v), " ")
	if !strings.EqualFold(scheme, "Digest") {
		return r, errNotDigest
	}
	for rest = strings.TrimSpace(rest); rest != ""; {
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 {
			return r, errors.New("malformed Digest authorization")
		}
		name := strings.ToLower(strings.TrimSpace(rest[:eq]))
		rest = strings.TrimLeft(rest[eq+1:], " \t")
		var val string
		if strings.HasPrefix(rest, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(rest) && rest[i] != '"'; i++ {
				if rest[i] == '\\' && i+1 < len(rest) {
					i++
				}
				b.WriteByte(rest[i])
			}
			if i >= len(rest) {
				return r, errors.New("malformed Digest authorization: unterminated quote")
			}
			val, rest = b.String(), rest[i+1:]
		} else {
			end := strings.IndexByte(rest, ',')
			if end < 0 {
				end = len(rest)
			}
			val, rest = strings.TrimSpace(rest[:end]), rest[end:]
		}
		rest = strings.TrimLeft(rest, " \t")
		if rest != "" {
			if rest[0] != ',' {
				return r, errors.New("malformed Digest authorization")
			}
			rest = strings.TrimLeft(rest[1:], " \t")
		}
		switch name {
		case "username":
			r.user = val
		case "realm":
			r.realm = val
		case "nonce":
			r.nonce = val
		case "uri":
			r.uri = val
		case "response":
			r.response = val
		case "algorithm":
			r.algorithm = val
		case "qop":
			r.qop = val
		case "nc":
			r.nc = val
		case "cnonce":
			r.cnonce = val
		}
	}
	if r.user == "" || r.nonce == "" || r.uri == "" || r.response == "" {
		return r, errors.New("incomplete Digest authorization")
	}
	return r, nil
}

// HA1 is the stored form of a Digest credential: the hex of
// MD5(user:DigestRealm:secret).
func HA1(user, secret string) string { return md5hex(user + ":" + DigestRealm + ":" + secret) }

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// verify says whether r was made for method with the secret behind ha1.
func (r digestResponse) verify(method, ha1 string) bool {
	ha2 := md5hex(method + ":" + r.uri)
	var want string
	switch r.qop {
	case "":
		want = md5hex(ha1 + ":" + r.nonce + ":" + ha2)
	case "auth":
		want = md5hex(ha1 + ":" + r.nonce + ":" + r.nc + ":" + r.cnonce + ":auth:" + ha2)
	default:
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.ToLower(r.response)), []byte(want)) == 1
}

// checkDigest authorizes a request without a grant by its Digest login.
// errChallenge means the client is to be challenged, not refused (no
// login yet, a nonce of another run, or a stale one: stale says so).
func (c *clientConn) checkDigest(req *Request, ru relayURL, db DigestBackend) (p Principal, stale bool, err error) {
	a := req.Header.Get("Authorization")
	if a == "" {
		return p, false, errChallenge
	}
	r, err := parseDigest(a)
	if err != nil {
		return p, false, Errorf(401, "%v: use rtsp://user:secret@… with an RTSP credential, or a minted URL", err)
	}
	if r.realm != DigestRealm {
		return p, false, errChallenge
	}
	if r.algorithm != "" && !strings.EqualFold(r.algorithm, "MD5") {
		return p, false, Errorf(401, "Digest algorithm %s is not supported; use MD5", r.algorithm)
	}
	ours, fresh := c.g.digest.nonceState(r.nonce, time.Now())
	if !ours {
		// A nonce from another relay or an earlier run: a new challenge,
		// not a refusal.
		return p, false, errChallenge
	}
	if !fresh {
		return p, true, errChallenge
	}
	// The response must be about this request's handle: one made for
	// another URL proves the secret but not what it was for.
	if ur, err := parseRelayURL(r.uri); err == nil {
		if ur.Handle != ru.Handle {
			return p, false, Errorf(401, "Digest uri names another handle")
		}
	} else if !strings.HasPrefix(r.uri, "/"+ru.Handle) {
		return p, false, Errorf(401, "Digest uri names another handle")
	}
	p, err = db.AuthorizeDigest(c.ctx, ru.Handle, r.user, func(ha1 string) bool { return r.verify(req.Method, ha1) })
	return p, false, err
}

// errChallenge: answer 401 with a fresh challenge.
var errChallenge = &Error{Status: 401, Reason: "missing grant or RTSP credential: use the URL the relay minted (…?nd_grant=…) or rtsp://user:secret@… with an RTSP credential"}
