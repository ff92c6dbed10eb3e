package relay_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/demo/camera"
	"github.com/nanodems/connector/relay"
)

const camUser, camPass = "admin", "cam-secret-123"

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so tests see every hop.
func browser(t *testing.T, d *demo.Demo) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	return &http.Client{
		Jar:       jar,
		Transport: operator(d).HTTPClient().Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn signs the operator in through the HTML form.
func signIn(t *testing.T, d *demo.Demo, c *http.Client, email, password string) *http.Response {
	t.Helper()
	resp, err := c.Get(d.Info.RelayURL + "/login")
	must(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfRe.FindSubmatch(body)
	if m == nil {
		t.Fatalf("sign-in page has no csrf field:\n%s", body)
	}
	resp, err = c.PostForm(d.Info.RelayURL+"/login", url.Values{"csrf": {string(m[1])}, "email": {email}, "password": {password}})
	must(t, err)
	resp.Body.Close()
	return resp
}

func get(t *testing.T, c *http.Client, u string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	must(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// camDevice starts a stand-in camera and registers it, with or without its
// login stored at the relay.
func camDevice(t *testing.T, d *demo.Demo, o camera.Options, storeLogin bool) (*camera.Camera, *camera.Server, string, string) {
	t.Helper()
	cam := camera.New(o)
	srv, err := cam.Start("127.0.0.1:0")
	must(t, err)
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(srv.Addr)
	body := map[string]any{"host": "127.0.0.1", "ports": []int{atoi(port)}, "label": "stand-in camera"}
	if storeLogin {
		body["username"], body["password"] = o.Username, o.Password
	}
	var dev struct {
		ID             string            `json:"id"`
		Handles        map[string]string `json:"handles"`
		HasCredentials bool              `json:"has_credentials"`
		Password       string            `json:"password"`
	}
	must(t, d.API.Do(context.Background(), "POST", "/api/sites/"+d.Info.SiteID+"/devices", body, &dev, demo.Bearer(d.Info.Token)))
	if dev.HasCredentials != storeLogin || dev.Password != "" {
		t.Fatalf("device answer: has_credentials %v (want %v), password %q (must never be returned)", dev.HasCredentials, storeLogin, dev.Password)
	}
	must(t, d.WaitAgent(context.Background(), 5*time.Second))
	return cam, srv, dev.Handles[port], dev.ID
}

// follow307 sends req and follows the relay's 307s back into the prefix,
// as fetch does, returning the final response.
func follow307(t *testing.T, c *http.Client, req *http.Request) *http.Response {
	t.Helper()
	for range 3 {
		resp, err := c.Do(req)
		must(t, err)
		if resp.StatusCode != http.StatusTemporaryRedirect {
			return resp
		}
		resp.Body.Close()
		next := req.Clone(req.Context())
		next.URL, err = req.URL.Parse(resp.Header.Get("Location"))
		must(t, err)
		if req.GetBody != nil {
			next.Body, _ = req.GetBody()
		}
		req = next
	}
	t.Fatal("redirect loop")
	return nil
}

func readBody(resp *http.Response) string {
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func atoi(s string) int {
	var n int
	fmt.Sscan(s, &n)
	return n
}

func TestBrowserProxyCameraUI(t *testing.T) {
	d := startDemo(t)
	cam, _, h, _ := camDevice(t, d, camera.Options{Username: camUser, Password: camPass}, true)
	c := browser(t, d)
	base := d.Info.RelayURL
	prefix := "/c/" + h

	// Not signed in: sent to sign in, and back afterwards.
	resp, _ := get(t, c, base+prefix+"/")
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/login?next="+url.QueryEscape(prefix+"/") {
		t.Fatalf("anonymous: %d Location %q", resp.StatusCode, loc)
	}
	resp = signIn(t, d, c, "operator@demo.invalid", d.Info.UserPassword)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == "nd_session" && (!ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteLaxMode) {
			t.Errorf("session cookie %+v is not HttpOnly, Secure, SameSite=Lax", ck)
		}
	}

	// The camera's absolute redirect stays under the prefix.
	resp, _ = get(t, c, base+prefix+"/")
	if loc := resp.Header.Get("Location"); loc != prefix+"/doc/page/login.asp" {
		t.Fatalf("camera redirect rewritten to %q", loc)
	}
	resp, _ = get(t, c, base+prefix+"/?abs=1")
	if loc := resp.Header.Get("Location"); loc != prefix+"/doc/page/login.asp" {
		t.Fatalf("absolute-URL redirect rewritten to %q", loc)
	}
	resp, page := get(t, c, base+prefix+"/doc/page/login.asp")
	if resp.StatusCode != 200 || !strings.Contains(page, "/ISAPI/Security/sessionLogin") {
		t.Fatalf("login page: %d", resp.StatusCode)
	}
	// Its absolute-path assets arrive outside the prefix, routed by Referer
	// back into it.
	for _, asset := range []string{"/doc/css/main.css", "/doc/script/app.js", "/doc/img/logo.png?v=2"} {
		resp, _ := get(t, c, base+asset, "Referer", base+prefix+"/doc/page/login.asp")
		if loc := resp.Header.Get("Location"); resp.StatusCode != 307 || loc != prefix+asset {
			t.Errorf("asset %s via Referer: %d Location %q", asset, resp.StatusCode, loc)
		}
		if resp, _ := get(t, c, base+prefix+asset); resp.StatusCode != 200 {
			t.Errorf("asset %s: %d", asset, resp.StatusCode)
		}
	}
	// The camera's login sets a cookie at / and redirects; both stay ours.
	req, _ := http.NewRequest("POST", base+"/ISAPI/Security/sessionLogin", strings.NewReader(url.Values{"user": {camUser}, "pass": {camPass}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Referer", base+prefix+"/doc/page/login.asp")
	req.GetBody = func() (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(url.Values{"user": {camUser}, "pass": {camPass}}.Encode())), nil
	}
	resp = follow307(t, c, req)
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != prefix+"/doc/page/main.asp" {
		t.Fatalf("camera login: %d Location %q", resp.StatusCode, loc)
	}
	var webSession *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "WebSession" {
			webSession = ck
		}
	}
	if webSession == nil || webSession.Path != prefix+"/" || !webSession.Secure {
		t.Fatalf("camera cookie %+v not scoped to %s/ and Secure", webSession, prefix)
	}
	resp, page = get(t, c, base+prefix+"/doc/page/main.asp")
	if resp.StatusCode != 200 || !strings.Contains(page, "main.js") {
		t.Fatalf("main page after camera login: %d", resp.StatusCode)
	}
	// JavaScript-built URL, no Referer: routed by the per-handle cookie;
	// the relay answers the camera's Digest challenge with the stored login
	// and signs the camera's own path.
	req, _ = http.NewRequest("GET", base+"/ISAPI/System/deviceInfo", nil)
	resp = follow307(t, c, req)
	page = readBody(resp)
	if resp.StatusCode != 200 || !strings.Contains(page, camera.Model) {
		t.Fatalf("deviceInfo: %d %q", resp.StatusCode, page)
	}
	if got := cam.LastAuthURI(); got != "/ISAPI/System/deviceInfo" {
		t.Errorf("Digest uri the camera checked: %q", got)
	}
	// The camera never saw the relay's cookies or the browser's Host.
	for _, r := range cam.Requests() {
		if strings.Contains(r, "nd_session") {
			t.Errorf("relay session leaked to camera: %s", r)
		}
	}
	for _, hst := range cam.Hosts() {
		if !strings.HasPrefix(hst, "127.0.0.1:") {
			t.Errorf("camera saw Host %q", hst)
		}
	}
	if nf := cam.NotFound(); len(nf) > 0 {
		t.Errorf("camera answered 404 for %v", nf)
	}

	t.Run("refresh and content-location", func(t *testing.T) {
		resp, _ := get(t, c, base+prefix+"/redirect-refresh")
		if got := resp.Header.Get("Refresh"); got != "0; url="+prefix+"/doc/page/login.asp" {
			t.Errorf("Refresh = %q", got)
		}
		resp, _ = get(t, c, base+prefix+"/content-location")
		if got := resp.Header.Get("Content-Location"); got != prefix+"/doc/page/login.asp" {
			t.Errorf("Content-Location = %q", got)
		}
	})
	t.Run("mjpeg streams", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", base+prefix+"/ISAPI/Streaming/channels/101/httpPreview", nil)
		resp, err := c.Do(req)
		must(t, err)
		defer resp.Body.Close()
		_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		must(t, err)
		mr := multipart.NewReader(resp.Body, params["boundary"])
		for i := range 3 {
			part, err := mr.NextPart()
			if err != nil {
				t.Fatalf("frame %d: %v", i, err)
			}
			b, _ := io.ReadAll(part)
			if len(b) < 100 || b[0] != 0xFF || b[1] != 0xD8 {
				t.Fatalf("frame %d is no JPEG (%d bytes)", i, len(b))
			}
		}
	})
	t.Run("server-sent events flush", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", base+prefix+"/events", nil)
		resp, err := c.Do(req)
		must(t, err)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		n := 0
		for n < 3 && sc.Scan() {
			if strings.HasPrefix(sc.Text(), "data: tick") {
				n++
			}
		}
		if n < 3 {
			t.Fatalf("got %d events: %v", n, sc.Err())
		}
	})
	t.Run("websocket echo", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		wsURL := "wss" + strings.TrimPrefix(base, "https") + prefix + "/ws/echo"
		ws, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPClient: c})
		must(t, err)
		defer ws.CloseNow()
		for i := range 3 {
			msg := fmt.Sprintf("ping-%d", i)
			must(t, ws.Write(ctx, websocket.MessageText, []byte(msg)))
			_, b, err := ws.Read(ctx)
			must(t, err)
			if string(b) != msg {
				t.Fatalf("echo %q, want %q", b, msg)
			}
		}
		ws.Close(websocket.StatusNormalClosure, "")
	})
	t.Run("200 MB upload streams", func(t *testing.T) {
		const size = 200 << 20
		h := sha256.New()
		req, _ := http.NewRequest("POST", base+prefix+"/ISAPI/System/updateFirmware", io.TeeReader(camera.UploadPattern(size), h))
		req.ContentLength = size
		resp, err := c.Do(req)
		must(t, err)
		defer resp.Body.Close()
		var got struct {
			Bytes  int64  `json:"bytes"`
			SHA256 string `json:"sha256"`
		}
		must(t, json.NewDecoder(resp.Body).Decode(&got))
		if got.Bytes != size || got.SHA256 != hex.EncodeToString(h.Sum(nil)) {
			t.Fatalf("camera received %d bytes sha256 %s, sent %d %x", got.Bytes, got.SHA256, size, h.Sum(nil))
		}
	})
}

// Without a stored login the camera's challenge reaches the browser as is.
func TestBrowserProxyChallengePassesThrough(t *testing.T) {
	d := startDemo(t)
	_, _, h, _ := camDevice(t, d, camera.Options{Username: camUser, Password: camPass}, false)
	c := browser(t, d)
	signIn(t, d, c, "operator@demo.invalid", d.Info.UserPassword)
	// deviceInfo needs the camera's own session first.
	req, _ := http.NewRequest("POST", d.Info.RelayURL+"/c/"+h+"/ISAPI/Security/sessionLogin", strings.NewReader("user="+camUser+"&pass="+camPass))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	must(t, err)
	resp.Body.Close()
	resp, _ = get(t, c, d.Info.RelayURL+"/c/"+h+"/ISAPI/System/deviceInfo")
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Digest ") {
		t.Fatalf("got %d WWW-Authenticate %q, want the camera's 401 Digest challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

func TestBrowserProxyErrors(t *testing.T) {
	d := startDemo(t, func(c *relay.Config) { c.CameraTimeout = 500 * time.Millisecond })
	ctx := context.Background()
	c := browser(t, d)
	signIn(t, d, c, "operator@demo.invalid", d.Info.UserPassword)

	// A camera that accepts and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer silent.Close()
	go func() {
		for {
			conn, err := silent.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	hSilent := addDevice(t, d, silent.Addr().(*net.TCPAddr).Port)
	resp, body := get(t, c, d.Info.RelayURL+"/c/"+hSilent+"/")
	if resp.StatusCode != 504 || !strings.Contains(body, "127.0.0.1") || !strings.Contains(body, "did not answer") {
		t.Errorf("silent camera: %d %q", resp.StatusCode, body)
	}
	refused, _ := net.Listen("tcp", "127.0.0.1:0")
	port := refused.Addr().(*net.TCPAddr).Port
	refused.Close()
	resp, body = get(t, c, d.Info.RelayURL+"/c/"+addDevice(t, d, port)+"/")
	if resp.StatusCode != 502 || !strings.Contains(body, "refused") {
		t.Errorf("refused port: %d %q", resp.StatusCode, body)
	}
	resp, _ = get(t, c, d.Info.RelayURL+"/c/h-AAAAAAAAAAAAAAAAAAAAAA/")
	if resp.StatusCode != 404 {
		t.Errorf("unknown handle: %d", resp.StatusCode)
	}

	// Another tenant's user gets 403.
	var ten, usr struct {
		ID string `json:"id"`
	}
	admin := demo.Admin(d.Info.AdminKey)
	must(t, d.API.Do(ctx, "POST", "/api/admin/tenants", map[string]string{"name": "Other"}, &ten, admin))
	must(t, d.API.Do(ctx, "POST", "/api/tenants/"+ten.ID+"/users", map[string]string{"email": "x@other.invalid", "password": "other-password-1"}, &usr, admin))
	other := browser(t, d)
	signIn(t, d, other, "x@other.invalid", "other-password-1")
	resp, _ = get(t, other, d.Info.RelayURL+"/c/"+d.Info.HTTPHandle+"/")
	if resp.StatusCode != 403 {
		t.Errorf("other tenant: %d", resp.StatusCode)
	}

	// A bad antiforgery token: 400 that says what to do.
	resp, err = c.PostForm(d.Info.RelayURL+"/login", url.Values{"csrf": {"forged"}, "email": {"a@b"}, "password": {"x"}})
	must(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), "Antiforgery token mismatch. Hard-refresh the page") {
		t.Errorf("csrf mismatch: %d %q", resp.StatusCode, b)
	}

	// Agent offline: 503 "agent reconnecting".
	must(t, d.API.Do(ctx, "POST", "/api/agents/"+d.Info.AgentID+"/revoke", nil, nil, admin))
	resp, body = get(t, c, d.Info.RelayURL+"/c/"+d.Info.HTTPHandle+"/")
	if resp.StatusCode != 503 || !strings.Contains(body, "reconnecting") {
		t.Errorf("agent offline: %d %q", resp.StatusCode, body)
	}
}

func TestSignOutEndsSessionServerSide(t *testing.T) {
	d := startDemo(t)
	c := browser(t, d)
	signIn(t, d, c, "operator@demo.invalid", d.Info.UserPassword)
	u, _ := url.Parse(d.Info.RelayURL)
	stolen := c.Jar.Cookies(u)
	resp, page := get(t, c, d.Info.RelayURL+"/sites")
	m := csrfRe.FindStringSubmatch(page)
	if resp.StatusCode != 200 || m == nil {
		t.Fatalf("home page: %d", resp.StatusCode)
	}
	resp, err := c.PostForm(d.Info.RelayURL+"/logout", url.Values{"csrf": {m[1]}})
	must(t, err)
	resp.Body.Close()
	// A copy of the old cookie no longer works.
	replay := browser(t, d)
	replay.Jar.SetCookies(u, stolen)
	resp, _ = get(t, replay, d.Info.RelayURL+"/c/"+d.Info.HTTPHandle+"/")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Fatalf("old session after sign-out: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestHTTPSCameraCertificateAudited(t *testing.T) {
	d := startDemo(t)
	cam := camera.New(camera.Options{TLS: true})
	srv, err := cam.Start("127.0.0.1:0")
	must(t, err)
	_, port, _ := net.SplitHostPort(srv.Addr)
	h := addDevice(t, d, atoi(port))
	c := browser(t, d)
	signIn(t, d, c, "operator@demo.invalid", d.Info.UserPassword)
	resp, _ := get(t, c, d.Info.RelayURL+"/c/"+h+"/doc/page/login.asp")
	if resp.StatusCode != 200 {
		t.Fatalf("https camera page: %d", resp.StatusCode)
	}
	wantAuditDetail(t, d, "camera.tls_first_seen", h, srv.Fingerprint)

	// The camera comes back with another certificate on the same port.
	srv.Close()
	srv2, err := camera.New(camera.Options{TLS: true}).Start(srv.Addr)
	must(t, err)
	defer srv2.Close()
	d.Relay.CloseIdleCameraConns()
	resp, _ = get(t, c, d.Info.RelayURL+"/c/"+h+"/doc/page/login.asp")
	if resp.StatusCode != 200 {
		t.Fatalf("https camera page after new cert: %d", resp.StatusCode)
	}
	wantAuditDetail(t, d, "camera.tls_changed", h, srv2.Fingerprint)
}

func wantAuditDetail(t *testing.T, d *demo.Demo, action, target, detail string) {
	t.Helper()
	var evs []auditEvent
	must(t, d.API.Do(context.Background(), "GET", "/api/audit?action="+action, nil, &evs, demo.Admin(d.Info.AdminKey)))
	for _, e := range evs {
		if e.Target == target && strings.Contains(e.Detail, detail) {
			return
		}
	}
	t.Fatalf("no audit %s for %s with %q in %+v", action, target, detail, evs)
}

// A request authenticated by the relay's own Authorization header (Basic
// with the operator's relay password, or a Bearer token) must not carry
// that header on to the camera.
func TestProxyDoesNotForwardRelayCredentials(t *testing.T) {
	d := startDemo(t)
	seen := make(chan string, 4)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("Authorization") + "|" + r.Header.Get("Cookie")
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	go srv.Serve(ln)
	defer srv.Close()
	h := addDevice(t, d, ln.Addr().(*net.TCPAddr).Port)
	c := operator(d).HTTPClient()
	for _, set := range []func(*http.Request){
		func(r *http.Request) { r.SetBasicAuth("Operator@Demo.invalid", d.Info.UserPassword) },
		func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+d.Info.Token) },
	} {
		req, _ := http.NewRequest("GET", d.Info.RelayURL+"/c/"+h+"/x", nil)
		set(req)
		resp, err := c.Do(req)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if got := <-seen; got != "|" {
			t.Fatalf("camera saw Authorization|Cookie %q", got)
		}
	}
}
