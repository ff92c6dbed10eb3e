package relay_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/relay"
	"github.com/nanodems/connector/relay/handle"
)

// countingDevice is an HTTP device that counts the TCP connections it
// accepts and the requests it serves: a refusal made before the relay
// dials leaves both at zero.
type countingDevice struct {
	conns, reqs atomic.Int64
	port        int
}

func newCountingDevice(t *testing.T) *countingDevice {
	t.Helper()
	cd := &countingDevice{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			cd.reqs.Add(1)
			io.WriteString(w, "ok")
		}),
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				cd.conns.Add(1)
			}
		},
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	cd.port = ln.Addr().(*net.TCPAddr).Port
	return cd
}

// quiet checks that the device saw nothing, allowing a moment for a
// connection the relay might have opened to be counted.
func (cd *countingDevice) quiet(t *testing.T, what string) {
	t.Helper()
	time.Sleep(100 * time.Millisecond) // deliberate: nothing to wait for, only room for a wrong dial to show
	if c, r := cd.conns.Load(), cd.reqs.Load(); c != 0 || r != 0 {
		t.Errorf("%s: the device saw %d connections and %d requests, want none (refuse before dialling)", what, c, r)
	}
}

// sessionCookie signs the operator in and returns the Cookie header of the
// relay's origin.
func sessionCookie(t *testing.T, d *demo.Demo) string {
	t.Helper()
	c := browser(t, d)
	signIn(t, d, c, "operator@demo.invalid", d.Info.UserPassword)
	u, _ := url.Parse(d.Info.RelayURL + "/")
	var parts []string
	for _, ck := range c.Jar.Cookies(u) {
		parts = append(parts, ck.Name+"="+ck.Value)
	}
	return strings.Join(parts, "; ")
}

const wsHeaders = "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="

// A WebSocket from a foreign Origin is refused before the relay dials the
// device (it used to be refused by the WebSocket library after the dial):
// on /api/tunnel, on /c/ and its absolute-path route, on the CLI's raw
// tunnel.
func TestCrossOriginWebSocketRefusedBeforeDial(t *testing.T) {
	d := startDemo(t)
	cd := newCountingDevice(t)
	h := addDevice(t, d, cd.port)
	u, err := url.Parse(d.Info.RelayURL)
	must(t, err)
	host := "Host: " + u.Host + "\r\n"
	bearer := "Authorization: Bearer " + d.Info.Token
	cookie := "Cookie: " + sessionCookie(t, d)
	cliS := mintCLI(t, d)
	_, ip := addSiteDevice(t, d, d.Info.SiteID, cd.port)
	must(t, d.WaitAgent(context.Background(), 5*time.Second))

	for _, tc := range []struct{ name, head string }{
		{"tunnel, token", "GET /api/tunnel/" + h + " HTTP/1.1\r\n" + host + bearer},
		{"tunnel, cookie", "GET /api/tunnel/" + h + " HTTP/1.1\r\n" + host + cookie},
		{"proxy, cookie", "GET /c/" + h + "/ws HTTP/1.1\r\n" + host + cookie},
		{"proxy, token", "GET /c/" + h + "/ws HTTP/1.1\r\n" + host + bearer},
		{"absolute path, cookie", "GET /ws HTTP/1.1\r\n" + host + cookie + "; nd_handle=" + h},
		{"cli raw tunnel", fmt.Sprintf("GET /api/cli/raw-tunnel/%s/%d HTTP/1.1\r\n%sAuthorization: Bearer %s", ip, cd.port, host, cliS.Token)},
	} {
		for _, origin := range []string{"Origin: https://evil.example", "Origin: null", "Origin: https://" + u.Host + "\r\nSec-Fetch-Site: cross-site"} {
			status, _, body := rawRequest(t, u.Host, tc.head+wsHeaders+"\r\n"+origin)
			if status != http.StatusForbidden || !strings.Contains(body, "cross-origin") {
				t.Errorf("%s, %q: %d %q, want 403 naming the cross-origin request", tc.name, origin, status, strings.TrimSpace(body))
			}
			cd.quiet(t, tc.name+", "+origin)
		}
	}

	// The relay's own origin still opens them.
	status, _, body := rawRequest(t, u.Host, "GET /api/tunnel/"+h+" HTTP/1.1\r\n"+host+cookie+wsHeaders+"\r\nOrigin: https://"+u.Host+"\r\nSec-Fetch-Site: same-origin")
	if status != http.StatusSwitchingProtocols {
		t.Errorf("same-origin tunnel: %d %q", status, body)
	}
}

// An unsafe method through the cookie path must come from the relay's own
// origin: a cross-site form POST carrying the session cookie used to reach
// the camera. A script's API credential is not sent by a browser on its
// own and passes.
func TestCrossSiteUnsafeMethodsRefused(t *testing.T) {
	d := startDemo(t)
	cd := newCountingDevice(t)
	h := addDevice(t, d, cd.port)
	u, err := url.Parse(d.Info.RelayURL)
	must(t, err)
	host := "Host: " + u.Host + "\r\n"
	cookie := "Cookie: " + sessionCookie(t, d)
	form := "\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 3"

	refused := []struct{ method, extra string }{
		{"POST", "Origin: https://evil.example"},
		{"POST", "Origin: null"},
		{"PUT", "Origin: https://evil.example"},
		{"PATCH", "Origin: https://" + u.Hostname() + ":1"}, // another port is another origin
		{"DELETE", "Origin: https://evil.example"},
		{"POST", "Sec-Fetch-Site: cross-site"},
		{"POST", "Sec-Fetch-Site: same-site\r\nOrigin: https://" + u.Host},
	}
	for _, tc := range refused {
		for _, cred := range []string{cookie, "Authorization: Basic " + basicAuth("operator@demo.invalid", d.Info.UserPassword)} {
			status, _, page := rawRequest(t, u.Host, tc.method+" /c/"+h+"/form HTTP/1.1\r\n"+host+cred+"\r\n"+tc.extra+form, "a=b")
			if status != http.StatusForbidden || !strings.Contains(page, "cross-origin") {
				t.Errorf("%s with %q, %.20s…: %d, want 403 naming the cross-origin request", tc.method, tc.extra, cred, status)
			}
		}
	}
	cd.quiet(t, "cross-site unsafe methods")

	allowed := []struct{ cred, extra string }{
		{cookie, "Origin: https://" + u.Host},
		{cookie, "Sec-Fetch-Site: same-origin\r\nOrigin: https://" + u.Host},
		{cookie, "Sec-Fetch-Site: none"},
		{cookie, "X-Nothing: browser-free client"},
		{"Authorization: Bearer " + d.Info.Token, "Origin: https://evil.example"},
		{"X-Admin-Api-Key: " + d.Info.AdminKey, "Origin: https://evil.example"},
	}
	for _, tc := range allowed {
		status, _, page := rawRequest(t, u.Host, "POST /c/"+h+"/form HTTP/1.1\r\n"+host+tc.cred+"\r\n"+tc.extra+form, "a=b")
		if status != http.StatusOK {
			t.Errorf("POST with %.20s…, %q: %d %q, want 200", tc.cred, tc.extra, status, page)
		}
	}
	if n := cd.reqs.Load(); n != int64(len(allowed)) {
		t.Errorf("device served %d requests, want %d", n, len(allowed))
	}
	// Safe methods are not checked: links from other sites still work.
	status, _, _ := rawRequest(t, u.Host, "GET /c/"+h+"/page HTTP/1.1\r\n"+host+cookie+"\r\nSec-Fetch-Site: cross-site")
	if status != http.StatusOK {
		t.Errorf("cross-site GET: %d, want 200", status)
	}
}

// In subdomain mode a camera's origin is same-site with the relay and
// every other camera: a POST from another camera's page is refused.
func TestSubdomainCrossOriginRefused(t *testing.T) {
	d := startDemo(t, func(c *relay.Config) { c.AppsDomain = "apps.test" })
	cd := newCountingDevice(t)
	h := addDevice(t, d, cd.port)
	u, err := url.Parse(d.Info.RelayURL)
	must(t, err)
	cookie := "Cookie: " + subdomainSession(t, d, h, "apps.test")
	label, err := handle.Label(h)
	must(t, err)
	_, port, _ := net.SplitHostPort(u.Host)
	self := label + ".apps.test:" + port
	otherCam := "https://hzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz.apps.test:" + port
	for _, tc := range []string{
		"POST /form HTTP/1.1\r\nHost: " + self + "\r\n" + cookie + "\r\nOrigin: " + otherCam + "\r\nContent-Length: 0",
		"POST /form HTTP/1.1\r\nHost: " + self + "\r\n" + cookie + "\r\nSec-Fetch-Site: same-site\r\nContent-Length: 0",
		"GET /ws HTTP/1.1\r\nHost: " + self + "\r\n" + cookie + wsHeaders + "\r\nOrigin: " + otherCam,
	} {
		status, _, page := rawRequest(t, u.Host, tc)
		if status != http.StatusForbidden || !strings.Contains(page, "cross-origin") {
			t.Errorf("%q: %d, want 403 naming the cross-origin request", strings.SplitN(tc, "\r\n", 2)[0], status)
		}
	}
	cd.quiet(t, "subdomain cross-origin")
	status, _, page := rawRequest(t, u.Host, "POST /form HTTP/1.1\r\nHost: "+self+"\r\n"+cookie+"\r\nOrigin: https://"+self+"\r\nContent-Length: 0")
	if status != http.StatusOK {
		t.Errorf("same-origin POST in subdomain mode: %d %q", status, page)
	}
}
