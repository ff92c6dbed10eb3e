package rewrite

import "testing"

func TestLocation(t *testing.T) {
	const p = "/c/h-AAAAAAAAAAAAAAAAAAAAAA"
	cam := []string{"192.168.1.64", "192.168.1.64:80"}
	for _, tc := range []struct{ in, want string }{
		{"/doc/page/login.asp", p + "/doc/page/login.asp"},
		{"/doc/page/login.asp?x=1#f", p + "/doc/page/login.asp?x=1#f"},
		{p + "/already", p + "/already"},
		{"http://192.168.1.64/doc/page/main.asp?a=b", p + "/doc/page/main.asp?a=b"},
		{"http://192.168.1.64:80/x", p + "/x"},
		{"https://192.168.1.64", p + "/"},
		{"http://example.com/elsewhere", "http://example.com/elsewhere"},
		{"relative/page.asp", "relative/page.asp"},
		{"//evil.example/x", "//evil.example/x"},
		{"", ""},
	} {
		if got := Location(tc.in, p, cam); got != tc.want {
			t.Errorf("Location(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRefresh(t *testing.T) {
	const p = "/c/h-x"
	for _, tc := range []struct{ in, want string }{
		{"0; url=/doc/page/login.asp", "0; url=" + p + "/doc/page/login.asp"},
		{"5;URL='/a'", "5; url=" + p + "/a"},
		{"10", "10"},
	} {
		if got := Refresh(tc.in, p, nil); got != tc.want {
			t.Errorf("Refresh(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSetCookie(t *testing.T) {
	const p = "/c/h-x"
	for _, tc := range []struct{ in, want string }{
		{"WebSession=abc; Path=/; HttpOnly", "WebSession=abc; Path=" + p + "/; HttpOnly"},
		{"a=b; path=/ISAPI; Domain=192.168.1.64", "a=b; Path=" + p + "/ISAPI"},
		{"a=b", "a=b; Path=" + p + "/"},
		{"a=b; Path=" + p + "/x", "a=b; Path=" + p + "/x"},
	} {
		if got := SetCookie(tc.in, p, false); got != tc.want {
			t.Errorf("SetCookie(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestHandleRouting(t *testing.T) {
	if h := HandleFromReferer("https://relay:9443/c/h-abc/doc/page/main.asp", "relay:9443"); h != "h-abc" {
		t.Errorf("referer handle %q", h)
	}
	if h := HandleFromReferer("https://other/c/h-abc/", "relay:9443"); h != "" {
		t.Errorf("a foreign referer routed to %q", h)
	}
	if got := StripPrefix("/c/h-abc/ISAPI/x", "/c/h-abc"); got != "/ISAPI/x" {
		t.Errorf("StripPrefix = %q", got)
	}
	if got := StripPrefix("/c/h-abc", "/c/h-abc"); got != "/" {
		t.Errorf("StripPrefix of the bare prefix = %q", got)
	}
}

func TestSetCookieSecure(t *testing.T) {
	if got := SetCookie("a=b; Path=/", "/c/h", true); got != "a=b; Path=/c/h/; Secure" {
		t.Errorf("SetCookie over TLS = %q", got)
	}
	if got := SetCookie("a=b; Secure", "/c/h", true); got != "a=b; Secure; Path=/c/h/" {
		t.Errorf("SetCookie of a Secure cookie = %q", got)
	}
}
