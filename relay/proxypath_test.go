package relay_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/relay"
	"github.com/nanodems/connector/relay/handle"
)

// uriRecorder is an HTTP device that answers 200 and reports the raw
// request-target of every request it gets, as it came off the wire.
func uriRecorder(t *testing.T) (port int, uris <-chan string) {
	t.Helper()
	ch := make(chan string, 64)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ch <- r.RequestURI
		io.WriteString(w, "ok")
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port, ch
}

// rawRequest sends head (request line and headers, without the blank line)
// and then body over a fresh HTTP/1.1 TLS connection to the relay at addr,
// so the request-target reaches the relay exactly as written, and returns
// the status, header and body of the answer.
func rawRequest(t *testing.T, addr, head string, body ...string) (int, http.Header, string) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	must(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	_, err = io.WriteString(c, head+"\r\nConnection: close\r\n\r\n"+strings.Join(body, ""))
	must(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	must(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header, string(b)
}

// pathTable: request-targets as a browser may send them after the prefix,
// each of which the device must see byte for byte.
var pathTable = []string{
	"/a%20b",
	"/a%2Fb",
	"/a%2fb",
	"/100%25",
	"/100%25/x%2525y",
	"/caf%C3%A9",
	"/caf%c3%a9/%E6%97%A5%E6%9C%AC",
	"/a+b",
	"/a;b=c",
	"/x;jsessionid=A%2FB",
	"/%7Euser/%21%27%28%29",
	"/mixed/a%20b+c;d%2F%25e%C3%A9?q=a%20b%2F%25&r=+;x%3D",
	"/plain/path.asp?x=1&y=%2F",
}

// The /c/ proxy hands the device the path the browser sent after the
// prefix, escapes untouched (it used to escape them again: %20 → %2520),
// and its query as it came.
func TestProxyPathsReachDeviceByteExact(t *testing.T) {
	d := startDemo(t)
	port, uris := uriRecorder(t)
	h := addDevice(t, d, port)
	u, err := url.Parse(d.Info.RelayURL)
	must(t, err)
	auth := "Authorization: Bearer " + d.Info.Token
	for _, p := range pathTable {
		status, _, body := rawRequest(t, u.Host, "GET /c/"+h+p+" HTTP/1.1\r\nHost: "+u.Host+"\r\n"+auth)
		if status != 200 {
			t.Errorf("GET /c/%s%s: %d %q", h, p, status, body)
			continue
		}
		if got := <-uris; got != p {
			t.Errorf("browser sent %q after the prefix, device got %q", p, got)
		}
	}

	// A WebSocket upgrade to an absolute path outside the prefix is
	// proxied where it arrives (by the nd_handle cookie): its path too.
	for _, p := range pathTable[:6] {
		status, _, body := rawRequest(t, u.Host, "GET "+p+" HTTP/1.1\r\nHost: "+u.Host+"\r\n"+auth+
			"\r\nCookie: nd_handle="+h+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==")
		if status != 200 {
			t.Errorf("upgrade %s: %d %q", p, status, body)
			continue
		}
		if got := <-uris; got != p {
			t.Errorf("upgrade: browser sent %q, device got %q", p, got)
		}
	}

	// Outside the prefix, a plain request is sent back into it with the
	// same escapes.
	for _, p := range pathTable[:6] {
		status, hdr, _ := rawRequest(t, u.Host, "GET "+p+" HTTP/1.1\r\nHost: "+u.Host+"\r\nCookie: nd_handle="+h)
		if want := "/c/" + h + p; status != http.StatusTemporaryRedirect || hdr.Get("Location") != want {
			t.Errorf("absolute path %s: %d Location %q, want 307 %q", p, status, hdr.Get("Location"), want)
		}
	}
}

// In subdomain mode the whole request-target is the device's.
func TestSubdomainPathsReachDeviceByteExact(t *testing.T) {
	d := startDemo(t, func(c *relay.Config) { c.AppsDomain = "apps.test" })
	port, uris := uriRecorder(t)
	h := addDevice(t, d, port)
	u, err := url.Parse(d.Info.RelayURL)
	must(t, err)
	cookie := subdomainSession(t, d, h, "apps.test")
	label, err := handle.Label(h)
	must(t, err)
	_, relayPort, _ := net.SplitHostPort(u.Host)
	host := label + ".apps.test:" + relayPort
	for _, p := range pathTable {
		status, _, body := rawRequest(t, u.Host, "GET "+p+" HTTP/1.1\r\nHost: "+host+"\r\nCookie: "+cookie)
		if status != 200 {
			t.Errorf("GET %s: %d %q", p, status, body)
			continue
		}
		if got := <-uris; got != p {
			t.Errorf("browser sent %q, device got %q", p, got)
		}
	}
}

// subdomainSession signs the operator in and walks the grant hand-off to
// handle h's subdomain; it returns the Cookie header of that origin.
func subdomainSession(t *testing.T, d *demo.Demo, h, appsDomain string) string {
	t.Helper()
	label, err := handle.Label(h)
	must(t, err)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(d.Info.RelayURL, "https://"))
	c := browser(t, d)
	tr := c.Transport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, p, _ := net.SplitHostPort(addr); strings.HasSuffix(host, "."+appsDomain) {
			addr = net.JoinHostPort("127.0.0.1", p)
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	c.Transport = tr
	signIn(t, d, c, "operator@demo.invalid", d.Info.UserPassword)
	resp, _ := get(t, c, d.Info.RelayURL+"/c-auth?handle="+url.QueryEscape(h)+"&next=%2F")
	grantURL := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("c-auth: %d", resp.StatusCode)
	}
	if resp, _ = get(t, c, grantURL); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("grant: %d", resp.StatusCode)
	}
	origin, _ := url.Parse("https://" + label + "." + appsDomain + ":" + port + "/")
	var parts []string
	for _, ck := range c.Jar.Cookies(origin) {
		parts = append(parts, fmt.Sprintf("%s=%s", ck.Name, ck.Value))
	}
	if len(parts) == 0 {
		t.Fatal("no cookie for the subdomain after the grant")
	}
	return strings.Join(parts, "; ")
}
