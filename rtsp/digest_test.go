package rtsp

import (
	"crypto/md5"
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

func md5s(s string) string { sum := md5.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }

// The Digest check takes the RFC 2617 §3.5 example (qop=auth) and its
// RFC 2069 form, and refuses any other secret, method or uri.
func TestDigestVerify(t *testing.T) {
	// RFC 2617 §3.5: Mufasa / Circle Of Life, realm testrealm@host.com.
	ha1 := md5s("Mufasa:testrealm@host.com:Circle Of Life")
	r, err := parseDigest(`Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", ` +
		`uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41"`)
	if err != nil {
		t.Fatal(err)
	}
	if !r.verify("GET", ha1) {
		t.Fatal("RFC 2617 example does not verify")
	}
	if r.verify("POST", ha1) || r.verify("GET", md5s("Mufasa:testrealm@host.com:circle of life")) {
		t.Fatal("another method or secret verifies")
	}
	// RFC 2069 form, as the gateway's challenge asks.
	want := md5s(HA1("rc_x", "s3cret") + ":n1:" + md5s("DESCRIBE:rtsp://h/x"))
	r, err = parseDigest(`Digest username="rc_x",realm="nanodems",nonce="n1",uri="rtsp://h/x",response="` + strings.ToUpper(want) + `"`)
	if err != nil {
		t.Fatal(err)
	}
	if !r.verify("DESCRIBE", HA1("rc_x", "s3cret")) || r.verify("DESCRIBE", HA1("rc_x", "s3cre")) {
		t.Fatal("RFC 2069 response: wrong verdict")
	}
	r.qop = "auth-int"
	if r.verify("DESCRIBE", HA1("rc_x", "s3cret")) {
		t.Fatal("auth-int verifies: only auth is supported")
	}
}

// Malformed or incomplete Authorization values are errors, not panics.
func TestParseDigestMalformed(t *testing.T) {
	for _, v := range []string{
		``, `Basic YTpi`, `Digest`, `Digest username="a"`, `Digest username="a, nonce="n", uri="u", response="r"`,
		`Digest =x`, `Digest username="a" nonce="n"`, `Digest username="a", nonce="n", uri="u"`,
	} {
		if _, err := parseDigest(v); err == nil {
			t.Errorf("parseDigest(%q): no error", v)
		}
	}
	r, err := parseDigest(`Digest username="a\"b", nonce=n, uri="rtsp://h/x?a=1,b=2", response=r`)
	if err != nil || r.user != `a"b` || r.uri != "rtsp://h/x?a=1,b=2" || r.nonce != "n" {
		t.Fatalf("quoted values: %+v %v", r, err)
	}
}

// A nonce is the gateway's only if its MAC verifies, and fresh for
// nonceTTL.
func TestDigestNonce(t *testing.T) {
	d, other := newDigestAuth(), newDigestAuth()
	now := time.Now()
	n := d.nonce(now)
	if ours, fresh := d.nonceState(n, now.Add(time.Minute)); !ours || !fresh {
		t.Fatalf("own nonce: ours %v fresh %v", ours, fresh)
	}
	if ours, fresh := d.nonceState(n, now.Add(nonceTTL+time.Second)); !ours || fresh {
		t.Fatalf("old nonce: ours %v fresh %v, want ours and stale", ours, fresh)
	}
	if ours, _ := other.nonceState(n, now); ours {
		t.Fatal("another gateway's nonce taken")
	}
	flip := "a"
	if strings.HasSuffix(n, "a") {
		flip = "b"
	}
	if ours, _ := d.nonceState(n[:len(n)-1]+flip, now); ours {
		t.Fatal("forged nonce taken")
	}
	if ours, _ := d.nonceState("zz", now); ours {
		t.Fatal("garbage nonce taken")
	}
}
