package fuzz

import (
	"strings"
	"testing"

	"github.com/nanodems/connector/relay/handle"
	"github.com/nanodems/connector/relay/rewrite"
)

const fuzzPrefix = "/c/h-RkN3Lzm9TgD8e2Bp7Q1xWA"

// FuzzRewriteLocation: Location, Content-Location and Refresh rewriting of
// camera headers. An absolute path always lands under the prefix, and
// rewriting twice changes nothing more.
func FuzzRewriteLocation(f *testing.F) {
	for _, s := range []string{
		"/doc/page/login.asp", "http://192.168.1.64/doc/page/main.asp?a=b#x", "https://192.168.1.64:443",
		"//evil.example/x", "relative.asp", "", "http://[::1]:80/x", "%zz", "0; url=/next", "5;URL='/a b'",
		fuzzPrefix + "/already", "http://192.168.1.64/%2e%2e/x",
	} {
		f.Add(s, "192.168.1.64")
	}
	f.Fuzz(func(t *testing.T, v, camHost string) {
		hosts := []string{camHost}
		got := rewrite.Location(v, fuzzPrefix, hosts)
		if strings.HasPrefix(v, "/") && !strings.HasPrefix(v, "//") && !strings.HasPrefix(got, fuzzPrefix) {
			t.Fatalf("absolute path %q rewritten to %q outside the prefix", v, got)
		}
		if strings.HasPrefix(got, "//") && !strings.HasPrefix(v, "//") {
			t.Fatalf("%q became a protocol-relative URL %q", v, got)
		}
		if again := rewrite.Location(got, fuzzPrefix, hosts); strings.HasPrefix(got, fuzzPrefix) && again != got {
			t.Fatalf("not idempotent: %q → %q → %q", v, got, again)
		}
		rewrite.Refresh(v, fuzzPrefix, hosts)
	})
}

// FuzzRewriteSetCookie: cookies always end up scoped under the prefix, and
// never keep a Domain attribute.
func FuzzRewriteSetCookie(f *testing.F) {
	for _, s := range []string{
		"WebSession=abc; Path=/; HttpOnly", "a=b; path=/ISAPI; Domain=192.168.1.64", "a=b", "a=b;;;", "=;Path",
		"a=b; Path=" + fuzzPrefix + "/x", "a=b; DOMAIN=.example.com; Secure; SameSite=None",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got := rewrite.SetCookie(v, fuzzPrefix, len(v)%2 == 0)
		attrs := strings.Split(got, ";")[1:]
		paths := 0
		for _, a := range attrs {
			name, val, _ := strings.Cut(strings.TrimSpace(a), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "domain":
				t.Fatalf("%q kept a Domain: %q", v, got)
			case "path":
				paths++
				if !strings.HasPrefix(val, fuzzPrefix) {
					t.Fatalf("%q scoped to %q, outside the prefix", v, val)
				}
			}
		}
		if paths == 0 {
			t.Fatalf("%q → %q has no Path", v, got)
		}
	})
}

// FuzzRouting: the Referer/path/cookie routing of escaped requests, and
// the handle ↔ DNS label mapping of the subdomain mode.
func FuzzRouting(f *testing.F) {
	for _, s := range []string{
		"https://relay:9443/c/h-abc/doc/page/main.asp", "https://relay:9443/c/", "/c/h-x", "http://[::1", "h86c2037a51fb",
		"hkrrtbd3cnt2u4bq3bbybtrmvjy", "h-86c2037a51fb",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if h := rewrite.HandleFromReferer(s, "relay:9443"); strings.Contains(h, "/") {
			t.Fatalf("handle %q from referer %q holds a slash", h, s)
		}
		if h := rewrite.HandleFromPath(s); strings.Contains(h, "/") {
			t.Fatalf("handle %q from path %q holds a slash", h, s)
		}
		if h, err := handle.FromLabel(s); err == nil {
			if _, perr := handle.Parse(h); perr != nil {
				t.Fatalf("label %q gave invalid handle %q", s, h)
			}
			back, err := handle.Label(h)
			if err != nil || back != s {
				t.Fatalf("label %q → %q → %q (%v)", s, h, back, err)
			}
		}
		if _, err := handle.Parse(s); err == nil {
			l, err := handle.Label(s)
			if err != nil || strings.ToLower(l) != l || len(l) > 63 {
				t.Fatalf("handle %q has label %q (%v): not a lowercase DNS label", s, l, err)
			}
			if back, err := handle.FromLabel(l); err != nil || back != s {
				t.Fatalf("handle %q → label %q → %q (%v)", s, l, back, err)
			}
		}
	})
}
