package httpauth

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fixedCnonce makes Authorization use the given client nonces in turn.
func fixedCnonce(c *Client, cnonces ...string) {
	c.cnonce = func() string {
		s := cnonces[0]
		if len(cnonces) > 1 {
			cnonces = cnonces[1:]
		}
		return s
	}
}

// RFC 7616 §3.9.1: the same request answered with SHA-256 and with MD5.
func TestRFC7616Vectors(t *testing.T) {
	const (
		nonce  = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v" // RFC 7616 §3.9.1 as published
		opaque = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
		cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
	)
	headers := []string{
		`Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, nonce="` + nonce + `", opaque="` + opaque + `"`,
		`Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, nonce="` + nonce + `", opaque="` + opaque + `"`,
	}
	chs, err := ParseChallenges(headers)
	if err != nil || len(chs) != 2 {
		t.Fatalf("ParseChallenges = %+v, %v", chs, err)
	}
	wantCh := Challenge{Scheme: "Digest", Realm: "http-auth@example.org", Nonce: nonce, Opaque: opaque, Algorithm: "SHA-256", QOP: []string{"auth", "auth-int"}}
	if !reflect.DeepEqual(chs[0], wantCh) {
		t.Fatalf("challenge 0 = %+v, want %+v", chs[0], wantCh)
	}
	if got, ok := Pick(chs); !ok || got.Algorithm != "SHA-256" {
		t.Fatalf("Pick = %+v, %v; want the SHA-256 challenge", got, ok)
	}
	for i, want := range []string{
		`Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=SHA-256, nonce="` + nonce + `", nc=00000001, cnonce="` + cnonce + `", qop=auth, response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", opaque="` + opaque + `"`,
		`Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=MD5, nonce="` + nonce + `", nc=00000001, cnonce="` + cnonce + `", qop=auth, response="8ca523f5e9506fed4657c9700eebdbec", opaque="` + opaque + `"`,
	} {
		c := &Client{Username: "Mufasa", Password: "Circle of Life"}
		fixedCnonce(c, cnonce)
		c.SetChallenge(chs[i])
		got, err := c.Authorization("GET", "/dir/index.html", nil)
		if err != nil || got != want {
			t.Errorf("%s:\n got %s, %v\nwant %s", chs[i].Algorithm, got, err, want)
		}
	}
}

// RFC 7616 §3.9.2 (SHA-512-256, userhash, non-ASCII user name). The RFC's
// printed userhash and response were computed with SHA-512 truncated to 256
// bits, not with SHA-512/256; the test pins that down with the RFC's inputs
// and checks the client against real SHA-512/256.
func TestRFC7616UserhashExample(t *testing.T) {
	const (
		user   = "J\u00e4s\u00f8n Doe"
		realm  = "api@example.org"
		nonce  = "5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK"
		opaque = "HRPCssKJSGjCrkzDg8OhwpzCiGPChXYjwrI2QmXDnsOS"
		cnonce = "NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v"
		pass   = "Secret, or not?"
	)
	trunc := func(s string) string { h := sha512.Sum512([]byte(s)); return hex.EncodeToString(h[:32]) }
	if got := trunc(user + ":" + realm); got != "488869477bf257147b804c45308cd62ac4e25eb717b12b298c79e62dcea254ec" {
		t.Fatalf("RFC userhash not reproduced with truncated SHA-512: %s", got)
	}
	chs, err := ParseChallenges([]string{`Digest realm="api@example.org", qop="auth", algorithm=SHA-512-256, nonce="` + nonce + `", opaque="` + opaque + `", charset=UTF-8, userhash=true`})
	if err != nil || len(chs) != 1 {
		t.Fatalf("ParseChallenges = %+v, %v", chs, err)
	}
	if ch := chs[0]; !ch.Userhash || ch.Charset != "UTF-8" || ch.Algorithm != "SHA-512-256" {
		t.Fatalf("challenge = %+v", ch)
	}
	c := &Client{Username: user, Password: pass}
	fixedCnonce(c, cnonce)
	c.SetChallenge(chs[0])
	got, err := c.Authorization("GET", "/doe.json", nil)
	if err != nil {
		t.Fatal(err)
	}
	p := mustParseAuthorization(t, got)
	if want := hexHash(sha512.New512_256, user+":"+realm); p["username"] != want || p["userhash"] != "true" {
		t.Errorf("username=%q userhash=%q, want %q and true", p["username"], p["userhash"], want)
	}
	if want := expectedResponse(sha512.New512_256, false, user, realm, pass, "GET", "/doe.json", nonce, "00000001", cnonce, "auth", nil); p["response"] != want {
		t.Errorf("response %s, want %s", p["response"], want)
	}
	if trunc(user+":"+realm) == p["username"] {
		t.Error("client computed SHA-512-256 as truncated SHA-512")
	}
}

// RFC 2617 §3.5.
func TestRFC2617Example(t *testing.T) {
	_, err := ParseChallenges([]string{`Digest
		realm="testrealm@host.com",
		qop="auth,auth-int",
		nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
		opaque="5ccc069c403ebaf9f0171e9517f40e41"`})
	if err == nil {
		t.Fatal("a raw line break must be rejected") // header values arrive unfolded
	}
	chs, err := ParseChallenges([]string{`Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"`})
	if err != nil || len(chs) != 1 {
		t.Fatalf("ParseChallenges = %+v, %v", chs, err)
	}
	c := &Client{Username: "Mufasa", Password: "Circle Of Life"}
	fixedCnonce(c, "0a4f113b")
	c.SetChallenge(chs[0])
	got, err := c.Authorization("GET", "/dir/index.html", nil)
	want := `Digest username="Mufasa", realm="testrealm@host.com", uri="/dir/index.html", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", nc=00000001, cnonce="0a4f113b", qop=auth, response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41"`
	if err != nil || got != want {
		t.Fatalf("\n got %s, %v\nwant %s", got, err, want)
	}
}

func TestParseChallenges(t *testing.T) {
	basic := func(realm string) Challenge { return Challenge{Scheme: "Basic", Realm: realm} }
	for _, tc := range []struct {
		name string
		in   []string
		want []Challenge
	}{
		{"nil", nil, nil},
		{"empty values", []string{"", " , ,"}, nil},
		{"basic", []string{`Basic realm="cam"`}, []Challenge{basic("cam")}},
		{"case and charset", []string{`bAsIc REALM="x", Charset="UTF-8"`}, []Challenge{{Scheme: "Basic", Realm: "x", Charset: "UTF-8"}}},
		{"bare scheme", []string{`Basic`}, []Challenge{basic("")}},
		{
			"several challenges in one value",
			[]string{`Digest realm="a", nonce="n1", qop="auth,auth-int", algorithm=SHA-256, Digest realm="a", nonce="n1", algorithm=MD5, Basic realm="a"`},
			[]Challenge{
				{Scheme: "Digest", Realm: "a", Nonce: "n1", QOP: []string{"auth", "auth-int"}, Algorithm: "SHA-256"},
				{Scheme: "Digest", Realm: "a", Nonce: "n1", Algorithm: "MD5"},
				basic("a"),
			},
		},
		{
			"several values",
			[]string{`Negotiate`, `Digest realm="r", nonce="n"`, `Basic realm="r"`},
			[]Challenge{{Scheme: "Digest", Realm: "r", Nonce: "n"}, basic("r")},
		},
		{
			"commas inside quoted strings",
			[]string{`Digest realm="a, b=c, Basic x", nonce="n,1", Basic realm=",,"`},
			[]Challenge{{Scheme: "Digest", Realm: "a, b=c, Basic x", Nonce: "n,1"}, basic(",,")},
		},
		{
			"escaped quotes and backslashes",
			[]string{`Digest realm="say \"hi\" \\o/", nonce="a\bc", opaque=""`},
			[]Challenge{{Scheme: "Digest", Realm: `say "hi" \o/`, Nonce: "abc"}},
		},
		{
			"stale and userhash",
			[]string{`Digest realm="r", nonce="n", stale=TRUE, userhash="true"`, `Digest realm="r", nonce="m", stale=false`},
			[]Challenge{{Scheme: "Digest", Realm: "r", Nonce: "n", Stale: true, Userhash: true}, {Scheme: "Digest", Realm: "r", Nonce: "m"}},
		},
		{
			// RFC 7235 §4.1's example plus token68 schemes.
			"unknown schemes skipped",
			[]string{`Bearer abc.def/ghi==, Negotiate, NTLM TlRMTVNTUAACAAAA, Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple"`},
			[]Challenge{basic("simple")},
		},
		{
			"empty list elements and whitespace",
			[]string{" , ,Digest  realm = \"r\" ,, nonce=n1\t, ,Basic\t,"},
			[]Challenge{{Scheme: "Digest", Realm: "r", Nonce: "n1"}, basic("")},
		},
		{
			"unquoted base64 nonce and qop token",
			[]string{`Digest realm="r", nonce=ab/c+d==, qop=auth, algorithm=md5-SESS`},
			[]Challenge{{Scheme: "Digest", Realm: "r", Nonce: "ab/c+d==", QOP: []string{"auth"}, Algorithm: "md5-SESS"}},
		},
		{
			"obs-text kept",
			[]string{"Basic realm=\"K\xc3\xa4mera\""},
			[]Challenge{basic("K\u00e4mera")},
		},
		{
			"unknown parameters ignored",
			[]string{`Digest realm="r", domain="/a /b", nonce="n", foo=bar`},
			[]Challenge{{Scheme: "Digest", Realm: "r", Nonce: "n"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseChallenges(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseChallengesMalformed(t *testing.T) {
	good := Challenge{Scheme: "Digest", Realm: "a", Nonce: "n"}
	for _, tc := range []struct {
		name string
		in   []string
		want []Challenge // what survives
	}{
		{"unterminated quote", []string{`Digest realm="unterminated`}, nil},
		{"backslash at end", []string{`Basic realm="x\`}, nil},
		{"missing value", []string{`Digest realm=`}, nil},
		{"missing value before comma", []string{`Digest realm=, nonce="n"`}, nil},
		{"Basic with token68", []string{`Basic QWxhZGRpbg==, Basic realm="r"`}, []Challenge{{Scheme: "Basic", Realm: "r"}}},
		{"no scheme", []string{`=foo`}, nil},
		{"quote as scheme", []string{`"Digest" realm="r"`}, nil},
		{"missing comma", []string{`Digest realm="a"nonce="b"`}, nil},
		{"junk after scheme", []string{`Digest/1 realm="a"`}, nil},
		{"CRLF injection", []string{"Digest realm=\"a\r\nX-Injected: 1\", nonce=\"n\""}, nil},
		{"escaped LF", []string{"Digest realm=\"a\\\n\", nonce=\"n\""}, nil},
		{"NUL", []string{"Digest\x00 realm=\"r\""}, nil},
		{"non-ASCII token", []string{"Digest r\u00e9alm=\"x\""}, nil},
		{"token68 then parameter", []string{`Foo abc==, realm="x" y`}, nil},
		{"duplicate parameter", []string{`Digest realm="a", NONCE="n", nonce="m"`}, nil},
		{"duplicate drops only its challenge", []string{`Digest realm="a", nonce="n", Basic realm="b", realm="c", Basic realm="d"`}, []Challenge{good, {Scheme: "Basic", Realm: "d"}}},
		{"garbage after good challenge", []string{`Digest realm="a", nonce="n", Basic realm="b" garbage`}, []Challenge{good}},
		{"good value, bad value", []string{`Digest realm="a", nonce="n"`, `Digest realm="a" "`, `Basic realm="c"`}, []Challenge{good, {Scheme: "Basic", Realm: "c"}}},
		{"too long", []string{`Basic realm="` + strings.Repeat("x", maxInput) + `"`}, nil},
		{"too many parameters", []string{"Digest " + strings.Repeat("p=1, ", maxParams) + "nonce=n"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseChallenges(tc.in)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}

	got, err := ParseChallenges([]string{strings.Repeat("Basic, ", 2*maxChallenges)})
	if !errors.Is(err, ErrMalformed) || len(got) != maxChallenges {
		t.Fatalf("too many challenges: %d challenges, %v", len(got), err)
	}
}

func TestPick(t *testing.T) {
	d := func(alg string, qop ...string) Challenge {
		return Challenge{Scheme: "Digest", Realm: "r", Nonce: "n-" + alg, Algorithm: alg, QOP: qop}
	}
	b := Challenge{Scheme: "Basic", Realm: "r"}
	for _, tc := range []struct {
		name string
		in   []Challenge
		want int // index, -1 for none
	}{
		{"none", nil, -1},
		{"basic only", []Challenge{b}, 0},
		{"digest over basic", []Challenge{b, d("")}, 1},
		{"sha-256 over md5", []Challenge{d("MD5", "auth"), d("SHA-256", "auth"), b}, 1},
		{"sha-256 over sha-512-256", []Challenge{d("SHA-512-256", "auth"), d("sha-256", "auth")}, 1},
		{"sha-512-256 over md5", []Challenge{d("MD5", "auth"), d("SHA-512-256", "auth")}, 1},
		{"sess ranks with its base", []Challenge{d("MD5", "auth"), d("SHA-256-sess", "auth")}, 1},
		{"first of equals", []Challenge{d("MD5", "auth"), d("md5", "auth")}, 0},
		{"auth over RFC 2069 over auth-int only", []Challenge{d("MD5", "auth-int"), d("MD5"), d("MD5", "auth-int", "auth")}, 2},
		{"RFC 2069 over auth-int only", []Challenge{d("MD5", "auth-int"), d("MD5")}, 1},
		{"unknown algorithm skipped", []Challenge{d("SHA-3", "auth"), b}, 1},
		{"unknown qop skipped", []Challenge{d("SHA-256", "auth-conf"), d("MD5", "auth")}, 1},
		{"sess without qop skipped", []Challenge{d("SHA-256-sess"), b}, 1},
		{"no nonce skipped", []Challenge{{Scheme: "Digest", Realm: "r"}, b}, 1},
		{"CTL skipped", []Challenge{{Scheme: "Digest", Realm: "r\n", Nonce: "n"}}, -1},
		{"unknown scheme skipped", []Challenge{{Scheme: "Bearer"}}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Pick(tc.in)
			if tc.want < 0 {
				if ok {
					t.Fatalf("Pick = %+v, want none", got)
				}
				return
			}
			if !ok || !reflect.DeepEqual(got, tc.in[tc.want]) {
				t.Fatalf("Pick = %+v, %v; want %+v", got, ok, tc.in[tc.want])
			}
		})
	}
}

func TestChallengeFromResponse(t *testing.T) {
	h := http.Header{}
	h.Add("WWW-Authenticate", `Basic realm="cam"`)
	h.Add("WWW-Authenticate", `Digest realm="cam", nonce="n", qop="auth", algorithm=MD5, stale=true`)
	h.Add("WWW-Authenticate", `Digest realm="cam", nonce="n", qop="auth", algorithm=SHA-256 "junk`)
	ch, ok := ChallengeFromResponse(h)
	if !ok || ch.Algorithm != "MD5" || !ch.Stale {
		t.Fatalf("got %+v, %v; want the stale MD5 challenge (the SHA-256 one is malformed)", ch, ok)
	}
	if _, ok := ChallengeFromResponse(http.Header{"Www-Authenticate": {"Bearer x"}}); ok {
		t.Fatal("Bearer picked")
	}
}

func TestBasic(t *testing.T) {
	c := &Client{Username: "Aladdin", Password: "open sesame"}
	if c.HasChallenge() {
		t.Fatal("HasChallenge before SetChallenge")
	}
	if _, err := c.Authorization("GET", "/", nil); !errors.Is(err, ErrNoChallenge) {
		t.Fatalf("err = %v, want ErrNoChallenge", err)
	}
	c.SetChallenge(Challenge{Scheme: "Basic", Realm: "WallyWorld"})
	if !c.HasChallenge() {
		t.Fatal("HasChallenge after SetChallenge")
	}
	// RFC 7617 §2.
	if got, err := c.Authorization("GET", "/", nil); err != nil || got != "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==" {
		t.Fatalf("got %q, %v", got, err)
	}
	c.Username = "a:b"
	if _, err := c.Authorization("GET", "/", nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("colon in user: err = %v, want ErrInvalid", err)
	}
}

func TestDigestNonceCountAndCnonce(t *testing.T) {
	c := &Client{Username: "admin", Password: "pw"}
	ch := Challenge{Scheme: "Digest", Realm: "r", Nonce: "n1", QOP: []string{"auth"}, Opaque: "op"}
	c.SetChallenge(ch)
	seen := map[string]bool{}
	for i := 1; i <= 3; i++ {
		p := mustParseAuthorization(t, mustAuthorization(t, c, "GET", "/a", nil))
		if want := fmt.Sprintf("%08x", i); p["nc"] != want {
			t.Fatalf("request %d: nc=%s, want %s", i, p["nc"], want)
		}
		if len(p["cnonce"]) < 16 || seen[p["cnonce"]] {
			t.Fatalf("request %d: cnonce %q short or reused", i, p["cnonce"])
		}
		seen[p["cnonce"]] = true
		if p["opaque"] != "op" {
			t.Fatalf("opaque %q not echoed", p["opaque"])
		}
		if _, ok := p["algorithm"]; ok {
			t.Fatal("algorithm sent though the server did not name one")
		}
		if want := expectedResponse(md5.New, false, "admin", "r", "pw", "GET", "/a", "n1", p["nc"], p["cnonce"], "auth", nil); p["response"] != want {
			t.Fatalf("response %s, want %s", p["response"], want)
		}
	}
	// The same nonce again (e.g. a repeated 401 header): nc goes on.
	c.SetChallenge(ch)
	if p := mustParseAuthorization(t, mustAuthorization(t, c, "GET", "/a", nil)); p["nc"] != "00000004" {
		t.Fatalf("same nonce: nc=%s, want 00000004", p["nc"])
	}
	// A new nonce restarts at 1.
	ch.Nonce = "n2"
	c.SetChallenge(ch)
	if p := mustParseAuthorization(t, mustAuthorization(t, c, "GET", "/a", nil)); p["nc"] != "00000001" || p["nonce"] != "n2" {
		t.Fatalf("new nonce: nc=%s nonce=%s", p["nc"], p["nonce"])
	}
	// The count cannot wrap around to a used value.
	c.mu.Lock()
	c.nc = math.MaxUint32 - 1
	c.mu.Unlock()
	if p := mustParseAuthorization(t, mustAuthorization(t, c, "GET", "/a", nil)); p["nc"] != "ffffffff" {
		t.Fatalf("nc=%s, want ffffffff", p["nc"])
	}
	if _, err := c.Authorization("GET", "/a", nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("exhausted nc: err = %v", err)
	}
}

func TestDigestVariants(t *testing.T) {
	const user, pass, realm, nonce = "admin", "pw", "r", "nonce"
	body := []byte("PUT body")
	for _, tc := range []struct {
		alg, wantQOP string
		offer        []string
		body         []byte
		newHash      func() hash.Hash
		sess         bool
	}{
		{"", "", nil, nil, md5.New, false}, // RFC 2069
		{"SHA-256", "", nil, nil, sha256.New, false},
		{"MD5-sess", "auth", []string{"auth"}, nil, md5.New, true},
		{"SHA-256-sess", "auth", []string{"auth"}, nil, sha256.New, true},
		{"MD5", "auth-int", []string{"auth-int"}, body, md5.New, false},
		{"SHA-256-sess", "auth-int", []string{"auth-int"}, []byte{}, sha256.New, true},
		{"MD5", "auth", []string{"auth-int", "auth"}, body, md5.New, false},
		{"MD5", "Auth", []string{"Auth"}, nil, md5.New, false},
	} {
		t.Run(tc.alg+"/"+tc.wantQOP, func(t *testing.T) {
			c := &Client{Username: user, Password: pass}
			c.SetChallenge(Challenge{Scheme: "Digest", Realm: realm, Nonce: nonce, Algorithm: tc.alg, QOP: tc.offer})
			p := mustParseAuthorization(t, mustAuthorization(t, c, "PUT", "/x", tc.body))
			if p["qop"] != tc.wantQOP || p["algorithm"] != tc.alg {
				t.Fatalf("qop=%q algorithm=%q, want %q %q", p["qop"], p["algorithm"], tc.wantQOP, tc.alg)
			}
			if tc.wantQOP == "" {
				for _, k := range []string{"nc", "cnonce", "qop"} {
					if _, ok := p[k]; ok {
						t.Fatalf("RFC 2069 answer carries %s", k)
					}
				}
			}
			want := expectedResponse(tc.newHash, tc.sess, user, realm, pass, "PUT", "/x", nonce, p["nc"], p["cnonce"], tc.wantQOP, tc.body)
			if p["response"] != want {
				t.Fatalf("response %s, want %s", p["response"], want)
			}
		})
	}
}

func TestDigestErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ch     Challenge
		user   string
		method string
		uri    string
		body   []byte
		want   error
	}{
		{"auth-int without body", Challenge{Scheme: "Digest", Nonce: "n", QOP: []string{"auth-int"}}, "u", "GET", "/", nil, ErrBodyRequired},
		{"unknown algorithm", Challenge{Scheme: "Digest", Nonce: "n", Algorithm: "SHA-1"}, "u", "GET", "/", nil, ErrUnsupported},
		{"unknown qop", Challenge{Scheme: "Digest", Nonce: "n", QOP: []string{"auth-conf"}}, "u", "GET", "/", nil, ErrUnsupported},
		{"sess without qop", Challenge{Scheme: "Digest", Nonce: "n", Algorithm: "MD5-sess"}, "u", "GET", "/", nil, ErrUnsupported},
		{"no nonce", Challenge{Scheme: "Digest", Realm: "r"}, "u", "GET", "/", nil, ErrUnsupported},
		{"unknown scheme", Challenge{Scheme: "Bearer"}, "u", "GET", "/", nil, ErrUnsupported},
		{"CR in uri", Challenge{Scheme: "Digest", Nonce: "n"}, "u", "GET", "/\r\nX: y", nil, ErrInvalid},
		{"LF in user", Challenge{Scheme: "Digest", Nonce: "n"}, "u\n", "GET", "/", nil, ErrInvalid},
		{"CTL in hand-made challenge", Challenge{Scheme: "Digest", Nonce: "n", Opaque: "\x00"}, "u", "GET", "/", nil, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Client{Username: tc.user, Password: "p"}
			c.SetChallenge(tc.ch)
			if _, err := c.Authorization(tc.method, tc.uri, tc.body); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			// A failed call uses up no nonce count.
			c.mu.Lock()
			nc := c.nc
			c.mu.Unlock()
			if nc != 0 {
				t.Fatalf("nc = %d after a failed call", nc)
			}
		})
	}
}

// Values with quotes and backslashes are escaped on the way out and hashed
// unescaped.
func TestDigestQuoting(t *testing.T) {
	const user, pass = `ad"min\`, `p"w`
	ch := Challenge{Scheme: "Digest", Realm: `r"e\alm, x`, Nonce: `n"o\nce`, Opaque: `o"p`, QOP: []string{"auth"}, Algorithm: "SHA-256"}
	c := &Client{Username: user, Password: pass}
	c.SetChallenge(ch)
	const uri = `/a"b`
	v := mustAuthorization(t, c, "GET", uri, nil)
	if !strings.Contains(v, `username="ad\"min\\"`) || !strings.Contains(v, `realm="r\"e\\alm, x"`) {
		t.Fatalf("bad escaping: %s", v)
	}
	p := mustParseAuthorization(t, v)
	if p["username"] != user || p["realm"] != ch.Realm || p["nonce"] != ch.Nonce || p["opaque"] != ch.Opaque || p["uri"] != uri {
		t.Fatalf("round trip: %q", p)
	}
	// The package's own parser reads the Authorization value back, too.
	back, err := ParseChallenges([]string{v})
	if err != nil || len(back) != 1 || back[0].Realm != ch.Realm || back[0].Nonce != ch.Nonce || back[0].Opaque != ch.Opaque {
		t.Fatalf("ParseChallenges(Authorization) = %+v, %v", back, err)
	}
	if want := expectedResponse(sha256.New, false, user, ch.Realm, pass, "GET", uri, ch.Nonce, p["nc"], p["cnonce"], "auth", nil); p["response"] != want {
		t.Fatalf("response %s, want %s", p["response"], want)
	}
}

// RTSP: the digest-uri is the absolute URL of the request line.
func TestRTSPRequestURI(t *testing.T) {
	chs, err := ParseChallenges([]string{`Digest realm="IP Camera(C1234)", nonce="0b6f6d4e8a0e2c2b", stale="FALSE"`, `Basic realm="IP Camera(C1234)"`})
	if err != nil {
		t.Fatal(err)
	}
	ch, ok := Pick(chs)
	if !ok || ch.Scheme != "Digest" || ch.Stale {
		t.Fatalf("Pick = %+v, %v", ch, ok)
	}
	c := &Client{Username: "admin", Password: "12345"}
	c.SetChallenge(ch)
	const uri = "rtsp://10.0.0.7:554/Streaming/Channels/101/trackID=1"
	p := mustParseAuthorization(t, mustAuthorization(t, c, "SETUP", uri, nil))
	if p["uri"] != uri {
		t.Fatalf("uri=%q", p["uri"])
	}
	if want := expectedResponse(md5.New, false, "admin", ch.Realm, "12345", "SETUP", uri, ch.Nonce, "", "", "", nil); p["response"] != want {
		t.Fatalf("response %s, want %s", p["response"], want)
	}
}

func TestConcurrentAuthorization(t *testing.T) {
	c := &Client{Username: "u", Password: "p"}
	c.SetChallenge(Challenge{Scheme: "Digest", Realm: "r", Nonce: "n", QOP: []string{"auth"}})
	const workers, each = 16, 50
	var (
		mu  sync.Mutex
		ncs = map[string]bool{}
		wg  sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for range each {
				v, err := c.Authorization("GET", "/", nil)
				if err != nil {
					t.Error(err)
					return
				}
				p, ok := parseAuthorization(v)
				if !ok {
					t.Errorf("unparsable %q", v)
					return
				}
				mu.Lock()
				if ncs[p["nc"]] {
					t.Errorf("nc %s used twice", p["nc"])
				}
				ncs[p["nc"]] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(ncs) != workers*each || !ncs[fmt.Sprintf("%08x", workers*each)] {
		t.Fatalf("%d distinct nc values, want 1..%d", len(ncs), workers*each)
	}
}

// digestServer is a camera: it verifies Digest answers itself, strictly
// (uri against the request line, nc strictly increasing per nonce, nonce
// expiry with stale=true).
type digestServer struct {
	t          *testing.T
	user, pass string
	realm      string
	qop        string // offered
	opaque     string

	mu       sync.Mutex
	nonce    string            // current
	lastNC   map[string]uint64 // nonce → highest nc accepted
	accepted []map[string]string
	bodyLen  []int
	nonceSeq int
	rejected string // why the last request was refused
}

func (s *digestServer) lastRejection() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejected
}

func newDigestServer(t *testing.T, qop string) *digestServer {
	s := &digestServer{t: t, user: "admin", pass: "s3cret", realm: "Camera 7", qop: qop, opaque: "0paque", lastNC: map[string]uint64{}}
	s.rotate()
	return s
}

// rotate expires the current nonce.
func (s *digestServer) rotate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nonceSeq++
	s.nonce = fmt.Sprintf("nonce-%d/%x", s.nonceSeq, md5.Sum([]byte(strconv.Itoa(s.nonceSeq))))
	s.lastNC[s.nonce] = 0
}

func (s *digestServer) challenge(w http.ResponseWriter, stale bool) {
	s.mu.Lock()
	nonce := s.nonce
	s.mu.Unlock()
	for _, alg := range []string{"SHA-256", "MD5"} {
		v := fmt.Sprintf(`Digest realm=%q, qop=%q, algorithm=%s, nonce=%q, opaque=%q`, s.realm, s.qop, alg, nonce, s.opaque)
		if stale {
			v += ", stale=true"
		}
		w.Header().Add("WWW-Authenticate", v)
	}
	w.Header().Add("WWW-Authenticate", `Basic realm="Camera 7"`)
	w.WriteHeader(http.StatusUnauthorized)
}

func (s *digestServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.t.Errorf("server reading body: %v", err)
	}
	p, ok := parseAuthorization(r.Header.Get("Authorization"))
	if !ok {
		s.challenge(w, false)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	reject := func(why string) {
		s.t.Logf("server rejects: %s", why)
		s.rejected = why
		s.mu.Unlock()
		s.challenge(w, false)
		s.mu.Lock()
	}
	var newHash func() hash.Hash
	switch p["algorithm"] {
	case "SHA-256":
		newHash = sha256.New
	case "MD5":
		newHash = md5.New
	default:
		reject("algorithm " + p["algorithm"])
		return
	}
	if p["username"] != s.user || p["realm"] != s.realm || p["opaque"] != s.opaque || p["qop"] != s.qop || p["cnonce"] == "" {
		reject(fmt.Sprintf("fields %q", p))
		return
	}
	if p["uri"] != r.RequestURI { // RFC 7616 §3.4.6
		reject(fmt.Sprintf("uri %q, request line has %q", p["uri"], r.RequestURI))
		return
	}
	last, known := s.lastNC[p["nonce"]]
	if !known {
		reject("unknown nonce")
		return
	}
	if len(p["nc"]) != 8 {
		reject("nc " + p["nc"])
		return
	}
	var b []byte
	if s.qop == "auth-int" {
		b = body
	}
	want := expectedResponse(newHash, false, s.user, s.realm, s.pass, r.Method, p["uri"], p["nonce"], p["nc"], p["cnonce"], p["qop"], b)
	if p["response"] != want {
		reject("wrong response")
		return
	}
	nc, err := strconv.ParseUint(p["nc"], 16, 32)
	if err != nil || nc <= last {
		reject(fmt.Sprintf("nc %s after %d: replay", p["nc"], last))
		return
	}
	if p["nonce"] != s.nonce { // right password, expired nonce
		s.mu.Unlock()
		s.challenge(w, true)
		s.mu.Lock()
		return
	}
	s.lastNC[p["nonce"]] = nc
	s.accepted = append(s.accepted, p)
	s.bodyLen = append(s.bodyLen, len(body))
	io.WriteString(w, "ok")
}

func TestEndToEnd(t *testing.T) {
	cam := newDigestServer(t, "auth")
	srv := httptest.NewServer(cam)
	defer srv.Close()
	hc := srv.Client()
	c := &Client{Username: cam.user, Password: cam.pass}

	do := func(req *http.Request) *http.Response {
		t.Helper()
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	authorize := func(req *http.Request) string {
		t.Helper()
		v, err := c.Authorization(req.Method, req.URL.RequestURI(), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", v)
		return v
	}
	const path = "/cgi-bin/snapshot.cgi?channel=1&name=a%20b"

	// 1. No credentials: 401 with three challenges; SHA-256 is picked.
	req, _ := http.NewRequest("GET", srv.URL+path, nil)
	resp := do(req)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", resp.StatusCode)
	}
	ch, ok := ChallengeFromResponse(resp.Header)
	if !ok || ch.Algorithm != "SHA-256" || ch.Stale {
		t.Fatalf("ChallengeFromResponse = %+v, %v", ch, ok)
	}
	c.SetChallenge(ch)

	// 2. Retry with credentials: accepted, nc=1.
	req, _ = http.NewRequest("GET", srv.URL+path, nil)
	first := authorize(req)
	if resp := do(req); resp.StatusCode != http.StatusOK {
		t.Fatalf("first authorized request: status %d", resp.StatusCode)
	}

	// 3. Preemptive, same nonce, nc=2, with a streamed body that could not
	// be replayed (no GetBody): accepted on the first try.
	pr, pw := io.Pipe()
	go func() {
		chunk := make([]byte, 64<<10)
		for range 16 {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ = http.NewRequest("PUT", srv.URL+"/upload/firmware.bin", pr)
	authorize(req)
	if resp := do(req); resp.StatusCode != http.StatusOK {
		t.Fatalf("preemptive upload: status %d", resp.StatusCode)
	}
	cam.mu.Lock()
	if n := len(cam.accepted); n != 2 || cam.accepted[0]["nc"] != "00000001" || cam.accepted[1]["nc"] != "00000002" ||
		cam.accepted[0]["nonce"] != cam.accepted[1]["nonce"] || cam.accepted[1]["algorithm"] != "SHA-256" || cam.bodyLen[1] != 1<<20 {
		t.Fatalf("server accepted %v (bodies %v)", cam.accepted, cam.bodyLen)
	}
	cam.mu.Unlock()

	// 4. The server is strict: a replayed header and a uri other than the
	// request line's are refused.
	req, _ = http.NewRequest("GET", srv.URL+path, nil)
	req.Header.Set("Authorization", first)
	if resp := do(req); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(cam.lastRejection(), "replay") {
		t.Fatalf("replay: status %d (%s), want 401 for replay", resp.StatusCode, cam.lastRejection())
	}
	req, _ = http.NewRequest("GET", srv.URL+"/proxy/h-abc"+path, nil) // the browser's path, not the camera's
	v, _ := c.Authorization("GET", path, nil)
	req.Header.Set("Authorization", v)
	if resp := do(req); resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(cam.lastRejection(), "uri") {
		t.Fatalf("wrong uri: status %d (%s), want 401 for the uri", resp.StatusCode, cam.lastRejection())
	}

	// 5. The nonce expires: 401 stale=true, the new nonce starts at nc=1.
	cam.rotate()
	req, _ = http.NewRequest("GET", srv.URL+path, nil)
	authorize(req)
	resp = do(req)
	ch, ok = ChallengeFromResponse(resp.Header)
	if resp.StatusCode != http.StatusUnauthorized || !ok || !ch.Stale {
		t.Fatalf("expired nonce: status %d, challenge %+v", resp.StatusCode, ch)
	}
	c.SetChallenge(ch)
	req, _ = http.NewRequest("GET", srv.URL+path, nil)
	authorize(req)
	if resp := do(req); resp.StatusCode != http.StatusOK {
		t.Fatalf("after stale: status %d", resp.StatusCode)
	}
	cam.mu.Lock()
	if last := cam.accepted[len(cam.accepted)-1]; last["nc"] != "00000001" || last["nonce"] != ch.Nonce {
		t.Fatalf("after stale: accepted %v", last)
	}
	cam.mu.Unlock()

	// 6. A wrong password gets 401 without stale: do not retry.
	bad := &Client{Username: cam.user, Password: "wrong"}
	bad.SetChallenge(ch)
	req, _ = http.NewRequest("GET", srv.URL+path, nil)
	v, _ = bad.Authorization("GET", path, nil)
	req.Header.Set("Authorization", v)
	resp = do(req)
	if ch, _ := ChallengeFromResponse(resp.Header); resp.StatusCode != http.StatusUnauthorized || ch.Stale || cam.lastRejection() != "wrong response" {
		t.Fatalf("wrong password: status %d, stale %v (%s)", resp.StatusCode, ch.Stale, cam.lastRejection())
	}
}

func TestEndToEndAuthInt(t *testing.T) {
	cam := newDigestServer(t, "auth-int")
	srv := httptest.NewServer(cam)
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/config")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ch, ok := ChallengeFromResponse(resp.Header)
	if !ok {
		t.Fatal("no challenge")
	}
	c := &Client{Username: cam.user, Password: cam.pass}
	c.SetChallenge(ch)
	if _, err := c.Authorization("PUT", "/config", nil); !errors.Is(err, ErrBodyRequired) {
		t.Fatalf("nil body: err = %v", err)
	}
	for i, body := range []string{"", "<config>on</config>"} {
		req, _ := http.NewRequest("PUT", srv.URL+"/config", strings.NewReader(body))
		v, err := c.Authorization("PUT", "/config", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", v)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("body %d: status %d", i, resp.StatusCode)
		}
	}
}

// --- independent helpers: a Digest computation and an Authorization
// parser written separately from the package's code.

func hexHash(newHash func() hash.Hash, s string) string {
	h := newHash()
	io.WriteString(h, s)
	return hex.EncodeToString(h.Sum(nil))
}

func expectedResponse(newHash func() hash.Hash, sess bool, user, realm, pass, method, uri, nonce, nc, cnonce, qop string, body []byte) string {
	H := func(s string) string { return hexHash(newHash, s) }
	ha1 := H(user + ":" + realm + ":" + pass)
	if sess {
		ha1 = H(ha1 + ":" + nonce + ":" + cnonce)
	}
	a2 := method + ":" + uri
	if strings.EqualFold(qop, "auth-int") {
		a2 += ":" + H(string(body))
	}
	if qop == "" {
		return H(ha1 + ":" + nonce + ":" + H(a2))
	}
	return H(ha1 + ":" + nonce + ":" + nc + ":" + cnonce + ":" + qop + ":" + H(a2))
}

// parseAuthorization splits `Digest name=value, name="quoted", ...`.
func parseAuthorization(v string) (map[string]string, bool) {
	rest, ok := strings.CutPrefix(v, "Digest ")
	if !ok {
		return nil, false
	}
	m := map[string]string{}
	for {
		rest = strings.TrimLeft(rest, " ,")
		if rest == "" {
			return m, true
		}
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 {
			return nil, false
		}
		name := strings.TrimSpace(rest[:eq])
		rest = rest[eq+1:]
		var val string
		if strings.HasPrefix(rest, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(rest) && rest[i] != '"'; i++ {
				if rest[i] == '\\' {
					if i++; i == len(rest) {
						return nil, false
					}
				}
				b.WriteByte(rest[i])
			}
			if i == len(rest) {
				return nil, false
			}
			val, rest = b.String(), rest[i+1:]
		} else {
			end := strings.IndexByte(rest, ',')
			if end < 0 {
				end = len(rest)
			}
			val, rest = strings.TrimSpace(rest[:end]), rest[end:]
		}
		if _, dup := m[name]; dup {
			return nil, false
		}
		m[name] = val
	}
}

func mustParseAuthorization(t *testing.T, v string) map[string]string {
	t.Helper()
	p, ok := parseAuthorization(v)
	if !ok {
		t.Fatalf("cannot parse Authorization %q", v)
	}
	return p
}

func mustAuthorization(t *testing.T, c *Client, method, uri string, body []byte) string {
	t.Helper()
	v, err := c.Authorization(method, uri, body)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
