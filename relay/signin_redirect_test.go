package relay_test

import (
	"context"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/relay"
)

// sameOrigin reports whether a browser on https://relay.example/ that is
// sent to Location loc stays there: browsers drop tabs and newlines from a
// URL and read "\" as "/" before resolving it.
func sameOrigin(loc string) bool {
	if strings.ContainsFunc(loc, func(r rune) bool { return r < 0x20 || r == 0x7f }) || strings.Contains(loc, `\`) {
		return false
	}
	base, _ := url.Parse("https://relay.example/login")
	u, err := base.Parse(strings.ReplaceAll(loc, `\`, "/"))
	return err == nil && u.Scheme == "https" && u.Host == "relay.example" && strings.HasPrefix(loc, "/") && !strings.HasPrefix(loc, "//")
}

// The redirect after sign-in stays on the relay whatever next says, in the
// Location actually sent: http.Redirect cleans the path, so a check of the
// raw value let "/x/../\evil.example/" out as "/\evil.example/". The
// subdomain hand-off (/c-auth, then the grant) is checked the same way.
func TestSigninRedirectStaysLocal(t *testing.T) {
	d := startDemo(t, func(c *relay.Config) { c.AppsDomain = "apps.test" })
	c := browser(t, d)
	tr := c.Transport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, p, _ := net.SplitHostPort(addr); strings.HasSuffix(host, ".apps.test") {
			addr = net.JoinHostPort("127.0.0.1", p)
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	c.Transport = tr
	defer tr.CloseIdleConnections()

	evil := []string{
		`/x/../\evil.example/`,
		`/\evil.example/`,
		`/./\evil.example`,
		`/..\evil.example`,
		`//evil.example/`,
		`/x/..//evil.example/`,
		`///evil.example`,
		"/\t/evil.example/",
		"/\n/evil.example/",
		"/x/../\t/evil.example",
		`\\evil.example`,
		`https://evil.example/`,
		`javascript:alert(1)`,
		`/%5Cevil.example/`,
		`/x/../%5C%5Cevil.example`,
		`/%2F%2Fevil.example/`,
		`/%09/evil.example`,
	}
	good := map[string]string{
		"/c/h-abc/":                "/c/h-abc/",
		"/c/h-abc/a%20b?x=1&y=//z": "/c/h-abc/a%20b?x=1&y=//z",
		"/c/h-abc/x/../y":          "/c/h-abc/y",
		"":                         "/",
	}
	check := func(what, next, loc string) {
		t.Helper()
		if want, ok := good[next]; ok && loc != want {
			t.Errorf("%s, next %q: Location %q, want %q", what, next, loc, want)
		}
		if !sameOrigin(loc) {
			t.Errorf("%s, next %q: Location %q leaves the relay", what, next, loc)
		}
	}
	for _, next := range append(slices.Collect(maps.Keys(good)), evil...) {
		// The sign-in form.
		a := postLogin(d, c, demo.OperatorEmail, d.Info.UserPassword, next)
		if a.status != http.StatusSeeOther {
			t.Fatalf("sign-in, next %q: %d %q", next, a.status, a.body)
		}
		check("sign-in", next, a.location)

		// The subdomain hand-off: /c-auth passes next on in the grant URL,
		// whose redirect then sends it.
		resp, _ := get(t, c, d.Info.RelayURL+"/c-auth?handle="+d.Info.HTTPHandle+"&next="+url.QueryEscape(next))
		grantURL := resp.Header.Get("Location")
		g, err := url.Parse(grantURL)
		if resp.StatusCode != http.StatusSeeOther || err != nil || !strings.HasSuffix(g.Hostname(), ".apps.test") {
			t.Fatalf("c-auth, next %q: %d Location %q", next, resp.StatusCode, grantURL)
		}
		check("c-auth", next, g.Query().Get("next"))
		resp, _ = get(t, c, grantURL)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("grant, next %q: %d", next, resp.StatusCode)
		}
		check("grant", next, resp.Header.Get("Location"))
	}
}
