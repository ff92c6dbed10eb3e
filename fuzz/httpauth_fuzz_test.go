package fuzz

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/nanodems/connector/internal/httpauth"
)

// FuzzParseChallenges feeds two WWW-Authenticate values (a camera may send
// one or several) to httpauth.ParseChallenges. Besides never panicking:
// errors wrap ErrMalformed, parsing is deterministic, every challenge Pick
// accepts yields an Authorization value, and that value carries no control
// characters and reads back (through the same auth-param grammar) with
// the challenge's realm, nonce and opaque, so quoting is right.
func FuzzParseChallenges(f *testing.F) {
	for _, s := range [][2]string{
		{`Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`,
			`Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`},
		{`Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"`, ""},
		{`Digest realm="api@example.org", qop="auth", algorithm=SHA-512-256, nonce="5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK", charset=UTF-8, userhash=true`, `Basic realm="api", charset="UTF-8"`},
		{`Digest realm="IP Camera(C1234)", nonce="0b6f6d4e8a0e2c2b", stale="FALSE"`, `Basic realm="IP Camera(C1234)"`},
		{`Bearer abc.def/ghi==, Negotiate, NTLM TlRMTVNTUAACAAAA, Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple"`, ""},
		{`Digest realm="a, b=c, Basic x", nonce="n,1", Basic realm=",,"`, `Digest realm="say \"hi\" \\o/", nonce="a\bc", opaque="\""`},
		{`Digest realm="r", nonce=ab/c+d==, qop=auth, algorithm=md5-SESS, stale=TRUE`, " , ,Digest  realm = \"r\" ,, nonce=n1\t, ,Basic\t,"},
		{`Digest realm="r", nonce="n", qop="auth-int", algorithm=SHA-256-sess`, `Digest realm="r", nonce="n", algorithm=MD5-sess`},
		{`Digest realm="a", nonce="n", Basic realm="b" garbage`, `Digest realm="a", realm="b", nonce="n"`},
		{`Digest realm="unterminated`, `Basic realm="x\`},
		{"Digest realm=\"a\r\nX-Injected: 1\", nonce=\"n\"", "Digest\x00 realm=\"r\""},
		{`Digest realm=, nonce="n"`, `Basic QWxhZGRpbg==`},
		{"", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		in := []string{a, b}
		chs, err := httpauth.ParseChallenges(in)
		if err != nil && !errors.Is(err, httpauth.ErrMalformed) {
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		}
		chs2, err2 := httpauth.ParseChallenges(in)
		if !reflect.DeepEqual(chs, chs2) || (err == nil) != (err2 == nil) {
			t.Fatalf("not deterministic: %+v, %v then %+v, %v", chs, err, chs2, err2)
		}
		if len(chs) > len(a)+len(b) {
			t.Fatalf("%d challenges from %d bytes", len(chs), len(a)+len(b))
		}
		for _, ch := range chs {
			if ch.Scheme != "Basic" && ch.Scheme != "Digest" {
				t.Fatalf("scheme %q returned", ch.Scheme)
			}
			c := &httpauth.Client{Username: `ad"min\`, Password: "pw"}
			c.SetChallenge(ch)
			v, err := c.Authorization("GET", "/cgi-bin/a.cgi?x=1", []byte{})
			_, pickable := httpauth.Pick([]httpauth.Challenge{ch})
			if err != nil {
				if pickable {
					t.Fatalf("Pick accepts %+v but Authorization fails: %v", ch, err)
				}
				continue
			}
			for i := 0; i < len(v); i++ {
				if (v[i] < 0x20 && v[i] != '\t') || v[i] == 0x7f { // HTAB is legal in a field value
					t.Fatalf("control character in Authorization %q", v)
				}
			}
			if ch.Scheme != "Digest" {
				continue
			}
			// The Authorization value has the challenge syntax; it must
			// parse back with the values the client was given. (Skipped
			// near the parser's 16 KiB input bound, which escaping can
			// push the echo over.)
			if len(v) < 8<<10 {
				back, err := httpauth.ParseChallenges([]string{v})
				if err != nil || len(back) != 1 || back[0].Realm != ch.Realm || back[0].Nonce != ch.Nonce || back[0].Opaque != ch.Opaque {
					t.Fatalf("Authorization %q for %+v reads back as %+v, %v", v, ch, back, err)
				}
			}
			if strings.Contains(v, ", nc=00000001,") {
				v2, err := c.Authorization("GET", "/", []byte{})
				if err != nil || !strings.Contains(v2, ", nc=00000002,") {
					t.Fatalf("second Authorization did not advance nc: %q, %v", v2, err)
				}
			}
		}
	})
}
