package relay_test

import (
	"context"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"

	"github.com/nanodems/connector/demo/camera"
	"github.com/nanodems/connector/relay"
	"github.com/nanodems/connector/relay/handle"
)

// In subdomain mode each handle is its own origin, {label}.<apps domain>,
// and the camera's paths, cookies and redirects pass untouched.
func TestSubdomainMode(t *testing.T) {
	d := startDemo(t, func(c *relay.Config) { c.AppsDomain = "apps.test" })
	_, _, h, _ := camDevice(t, d, camera.Options{Username: camUser, Password: camPass}, true)
	label, err := handle.Label(h)
	must(t, err)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(d.Info.RelayURL, "https://"))

	// A browser whose DNS sends *.apps.test to the relay, as a wildcard
	// record would.
	c := browser(t, d)
	tr := c.Transport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, p, _ := net.SplitHostPort(addr); strings.HasSuffix(host, ".apps.test") {
			addr = net.JoinHostPort("127.0.0.1", p)
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	c.Transport = tr
	origin := "https://" + label + ".apps.test:" + port

	// Not signed in anywhere: sent to the relay's origin to sign in.
	resp, _ := get(t, c, origin+"/doc/page/login.asp")
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, d.Info.RelayURL+"/c-auth?handle="+h) {
		t.Fatalf("anonymous subdomain request: %d Location %q", resp.StatusCode, loc)
	}
	signIn(t, d, c, "operator@demo.invalid", d.Info.UserPassword)
	resp, _ = get(t, c, loc)
	grantURL := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(grantURL, origin+"/__nd/auth?grant=") {
		t.Fatalf("c-auth: %d Location %q", resp.StatusCode, grantURL)
	}
	resp, _ = get(t, c, grantURL)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/doc/page/login.asp" {
		t.Fatalf("grant: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The camera's own redirect and cookie are not rewritten.
	resp, _ = get(t, c, origin+"/")
	if loc := resp.Header.Get("Location"); loc != "/doc/page/login.asp" {
		t.Errorf("camera redirect in subdomain mode: %q", loc)
	}
	resp, page := get(t, c, origin+"/doc/page/login.asp")
	if resp.StatusCode != 200 || !strings.Contains(page, "/ISAPI/Security/sessionLogin") {
		t.Fatalf("camera page: %d", resp.StatusCode)
	}
	// A grant is good once.
	fresh, _ := cookiejar.New(nil)
	c.Jar = fresh
	resp, _ = get(t, c, grantURL)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("replayed grant: %d, want 403", resp.StatusCode)
	}
}
