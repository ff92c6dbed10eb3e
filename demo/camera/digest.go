package camera

import (
	"crypto/md5"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
	"time"
)

// HTTP Digest auth (RFC 7616) with qop=auth and MD5, as cameras use it.
//
// The response is verified against the uri= parameter the client sent, not
// the request line: a browser behind a proxy at /c/{handle}/ hashes the URL
// it sees, and real camera firmwares accept that. Every uri= seen is
// recorded (AuthURIs) so tests can assert what reached the camera.

// nonceTTL is how long a nonce is good for; for as long again a reply with
// it earns a stale=true challenge, after which it is forgotten.
const nonceTTL = 5 * time.Minute

// challenge issues a fresh nonce and returns the WWW-Authenticate value.
func (c *Camera) challenge(stale bool) string {
	nonce, now := randomHex(16), time.Now()
	c.mu.Lock()
	for n, t := range c.nonces {
		if now.Sub(t) > 2*nonceTTL {
			delete(c.nonces, n)
		}
	}
	c.nonces[nonce] = now
	c.mu.Unlock()
	s := `Digest realm=` + quote(c.o.Realm) + `, qop="auth", algorithm=MD5, nonce=` + quote(nonce) + `, opaque=` + quote(c.opaque)
	if stale {
		s += ", stale=true"
	}
	return s
}

// checkDigest verifies r's Authorization header. stale reports a correct
// response on an expired nonce: the client should retry without prompting.
func (c *Camera) checkDigest(r *http.Request) (ok, stale bool) {
	p, ok := parseDigest(r.Header.Get("Authorization"))
	if !ok {
		return false, false
	}
	c.mu.Lock()
	c.authURIs = append(c.authURIs, p["uri"])
	issued, known := c.nonces[p["nonce"]]
	c.mu.Unlock()
	switch {
	case !known, p["username"] != c.o.Username, p["realm"] != c.o.Realm, p["qop"] != "auth",
		p["uri"] == "", p["nc"] == "", p["cnonce"] == "",
		p["algorithm"] != "" && !strings.EqualFold(p["algorithm"], "MD5"),
		p["opaque"] != "" && p["opaque"] != c.opaque:
		return false, false
	}
	ha1 := md5hex(c.o.Username + ":" + c.o.Realm + ":" + c.o.Password)
	ha2 := md5hex(r.Method + ":" + p["uri"])
	want := md5hex(ha1 + ":" + p["nonce"] + ":" + p["nc"] + ":" + p["cnonce"] + ":auth:" + ha2)
	if subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(p["response"]))) != 1 {
		return false, false
	}
	if time.Since(issued) > nonceTTL {
		return false, true
	}
	return true, false
}

// parseDigest splits `Digest k=v, k="quoted \" v", ...` into lower-cased
// keys and unquoted values.
func parseDigest(h string) (map[string]string, bool) {
	scheme, rest, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Digest") {
		return nil, false
	}
	p := map[string]string{}
	for {
		rest = strings.TrimLeft(rest, " \t,")
		if rest == "" {
			return p, true
		}
		k, v, ok := strings.Cut(rest, "=")
		if !ok {
			return nil, false
		}
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimLeft(v, " \t")
		if strings.HasPrefix(v, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(v) && v[i] != '"'; i++ {
				if v[i] == '\\' && i+1 < len(v) {
					i++
				}
				b.WriteByte(v[i])
			}
			if i >= len(v) {
				return nil, false // unterminated quoted string
			}
			p[k], rest = b.String(), v[i+1:]
		} else {
			end := strings.IndexAny(v, ", \t")
			if end < 0 {
				end = len(v)
			}
			p[k], rest = v[:end], v[end:]
		}
	}
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}
