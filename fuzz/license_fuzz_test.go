package fuzz

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/nanodems/connector/relay/license"
)

// FuzzLicenseSubprotocols feeds two Sec-WebSocket-Protocol values to
// license.FromSubprotocols, which reads an OpCon license from a WebSocket
// upgrade. Besides never panicking: errors wrap ErrMalformed; no license
// offered is no credential; an accepted license is a canonical GUID that
// parses back to itself, its user id is empty or a bounded HTTP token,
// and the subprotocol it names for the relay to echo is one of those the
// client offered (RFC 6455 lets the server pick nothing else).
func FuzzLicenseSubprotocols(f *testing.F) {
	g := "0f8fad5b-d9cb-469f-a165-70867728950e"
	for _, s := range [][2]string{
		{"license." + g + ".user.op-17", ""},
		{"license." + g, "user.op-17"},
		{"user.x, license." + g, ""},
		{"license." + strings.ToUpper(g) + ".user.a.b.c", "chat"},
		{"license." + g + ", license." + g, ""},
		{"license.0f8fad5b", "user."},
		{"license." + g + ".user.", "user.x"},
		{"license." + g + ".userx", ""},
		{" , ,\t,", "license.\x00"},
		{"", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		in := []string{a, b}
		c, ok, err := license.FromSubprotocols(in)
		if err != nil {
			if !errors.Is(err, license.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			if !ok {
				t.Fatalf("an error without a license offered: %v", err)
			}
			return
		}
		if !ok {
			if c != (license.Credential{}) {
				t.Fatalf("no license offered, yet %+v", c)
			}
			return
		}
		checkLicense(t, c)
		var offered []string
		for _, v := range in {
			for p := range strings.SplitSeq(v, ",") {
				offered = append(offered, strings.Trim(p, " \t"))
			}
		}
		if !slices.Contains(offered, c.Subprotocol) {
			t.Fatalf("subprotocol %q to echo was not offered in %q", c.Subprotocol, in)
		}
		c2, ok2, err2 := license.FromSubprotocols(in)
		if c2 != c || ok2 != ok || err2 != nil {
			t.Fatalf("not deterministic: %+v then %+v %v", c, c2, err2)
		}
	})
}

// FuzzLicenseHeaders feeds X-License and X-User-Id values to
// license.FromHeaders: errors wrap ErrMalformed, and an accepted license
// is a canonical GUID with a bounded token for a user id.
func FuzzLicenseHeaders(f *testing.F) {
	for _, s := range [][2]string{
		{"0f8fad5b-d9cb-469f-a165-70867728950e", ""},
		{"0F8FAD5B-D9CB-469F-A165-70867728950E", "operator-7"},
		{" 0f8fad5b-d9cb-469f-a165-70867728950e\t", "a@b"},
		{"0f8fad5b-d9cb-469f-a165-70867728950", "x"},
		{"{0f8fad5b-d9cb-469f-a165-70867728950e}", ""},
		{"0f8fad5bxd9cb-469f-a165-70867728950e", "\r\nX-Evil: 1"},
		{"", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, guid, user string) {
		c, err := license.FromHeaders(guid, user)
		if err != nil {
			if !errors.Is(err, license.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if c.Subprotocol != "" {
			t.Fatalf("header form names a subprotocol: %+v", c)
		}
		checkLicense(t, c)
	})
}

// checkLicense: what the relay gets from an accepted license is safe to
// look up, hash and write in the audit log.
func checkLicense(t *testing.T, c license.Credential) {
	t.Helper()
	if g, err := license.ParseGUID(c.GUID); err != nil || g != c.GUID || strings.ToLower(c.GUID) != c.GUID {
		t.Fatalf("GUID %q is not canonical: %v", c.GUID, err)
	}
	if len(c.UserID) > license.MaxUserID {
		t.Fatalf("user id of %d bytes", len(c.UserID))
	}
	for i := 0; i < len(c.UserID); i++ {
		if b := c.UserID[i]; b <= ' ' || b >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, b) >= 0 {
			t.Fatalf("user id %q holds %q", c.UserID, b)
		}
	}
}
