package camera

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"image/png"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/nanodems/connector/internal/testwait"
)

// newClient has a cookie jar and does not follow redirects, so the tests
// see every Location the camera sends.
func newClient(t *testing.T, base *http.Client) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := *base
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

func do(t *testing.T, c *http.Client, method, u string, body io.Reader, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func expect(t *testing.T, resp *http.Response, status int, header, want string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d", resp.Request.Method, resp.Request.URL, resp.StatusCode, status)
	}
	if header != "" && resp.Header.Get(header) != want {
		t.Fatalf("%s %s: %s %q, want %q", resp.Request.Method, resp.Request.URL, header, resp.Header.Get(header), want)
	}
}

func login(t *testing.T, c *http.Client, base, user, pass string) *http.Response {
	t.Helper()
	resp, _ := do(t, c, "POST", base+"/ISAPI/Security/sessionLogin",
		strings.NewReader(url.Values{"user": {user}, "pass": {pass}}.Encode()),
		"Content-Type", "application/x-www-form-urlencoded")
	return resp
}

// urlAttr finds href/src/action attributes and CSS url() references.
var urlAttr = regexp.MustCompile(`(href|src|action)="([^"]*)"|(url)\(([^)]*)\)`)

func TestLoginFlowAndAbsolutePaths(t *testing.T) {
	cam := New(Options{Username: "admin", Password: "12345"})
	ts := httptest.NewServer(cam.Handler())
	defer ts.Close()
	c := newClient(t, ts.Client())
	host := strings.TrimPrefix(ts.URL, "http://")

	resp, _ := do(t, c, "GET", ts.URL+"/", nil)
	expect(t, resp, 302, "Location", "/doc/page/login.asp")
	resp, _ = do(t, c, "GET", ts.URL+"/?abs=1", nil)
	expect(t, resp, 302, "Location", "http://"+host+"/doc/page/login.asp")
	resp, _ = do(t, c, "GET", ts.URL+"/doc/page/main.asp", nil)
	expect(t, resp, 302, "Location", "/doc/page/login.asp")

	resp, loginPage := do(t, c, "GET", ts.URL+"/doc/page/login.asp", nil)
	expect(t, resp, 200, "Content-Type", "text/html; charset=utf-8")
	for _, want := range []string{`action="/ISAPI/Security/sessionLogin"`, `name="user"`, `name="pass"`,
		`href="/doc/css/main.css"`, `src="/doc/script/app.js"`, `src="/doc/img/logo.png"`} {
		if !strings.Contains(loginPage, want) {
			t.Errorf("login page lacks %s", want)
		}
	}

	expect(t, login(t, c, ts.URL, "admin", "wrong"), 401, "", "")
	if u, _ := url.Parse(ts.URL); len(c.Jar.Cookies(u)) != 0 {
		t.Fatal("failed login set a cookie")
	}
	resp = login(t, c, ts.URL, "admin", "12345")
	expect(t, resp, 302, "Location", "/doc/page/main.asp")
	ck := resp.Cookies()
	if len(ck) != 1 || ck[0].Name != "WebSession" || ck[0].Path != "/" || !ck[0].HttpOnly || len(ck[0].Value) < 16 {
		t.Fatalf("session cookie = %+v", ck)
	}

	resp, mainPage := do(t, c, "GET", ts.URL+"/doc/page/main.asp", nil)
	expect(t, resp, 200, "", "")
	for _, want := range []string{`src="/doc/script/main.js"`, `id="model"`, `id="ws"`, `id="upload"`,
		`<img id="live" src="/ISAPI/Streaming/channels/101/httpPreview"`, `action="/ISAPI/System/updateFirmware"`} {
		if !strings.Contains(mainPage, want) {
			t.Errorf("main page lacks %s", want)
		}
	}

	// Static assets, and every URL anywhere an absolute path that resolves.
	resp, css := do(t, c, "GET", ts.URL+"/doc/css/main.css", nil)
	expect(t, resp, 200, "Content-Type", "text/css; charset=utf-8")
	resp, mainJS := do(t, c, "GET", ts.URL+"/doc/script/main.js", nil)
	expect(t, resp, 200, "Content-Type", "text/javascript; charset=utf-8")
	for _, want := range []string{"isapi + '/System/' + 'deviceInfo'", "location.host + '/ws/echo'",
		"'wss://'", "window.upload", "window.camState", "wsEchoes"} {
		if !strings.Contains(mainJS, want) {
			t.Errorf("main.js lacks %s", want)
		}
	}
	resp, logo := do(t, c, "GET", ts.URL+"/doc/img/logo.png", nil)
	expect(t, resp, 200, "Content-Type", "image/png")
	if img, err := png.Decode(strings.NewReader(logo)); err != nil || img.Bounds().Dx() != 32 {
		t.Fatalf("logo.png: %v", err)
	}
	for _, doc := range []string{loginPage, mainPage, css, loginFailedHTML} {
		for _, m := range urlAttr.FindAllStringSubmatch(doc, -1) {
			ref := m[2] + m[4]
			if !strings.HasPrefix(ref, "/") {
				t.Errorf("relative URL %q", ref)
			}
			if m[1] == "action" {
				continue // POST targets, exercised elsewhere
			}
			if resp, _ := do(t, c, "GET", ts.URL+ref+"?frames=1", nil); resp.StatusCode != 200 && resp.StatusCode != 405 {
				t.Errorf("GET %s: %d", ref, resp.StatusCode)
			}
		}
	}

	reqs := cam.Requests()
	if reqs[0] != "GET /" || reqs[1] != "GET /?abs=1" || !slices.Contains(reqs, "POST /ISAPI/Security/sessionLogin") {
		t.Errorf("requests = %q", reqs)
	}
	if hosts := cam.Hosts(); len(hosts) != len(reqs) || hosts[0] != host {
		t.Errorf("hosts = %q (%d requests)", hosts, len(reqs))
	}
	if nf := cam.NotFound(); len(nf) != 0 {
		t.Errorf("not found = %q", nf)
	}
}

func TestAnyLoginWithoutCredentials(t *testing.T) {
	ts := httptest.NewServer(New(Options{}).Handler())
	defer ts.Close()
	c := newClient(t, ts.Client())
	resp, _ := do(t, c, "GET", ts.URL+"/ISAPI/System/deviceInfo", nil)
	expect(t, resp, 403, "", "")
	expect(t, login(t, c, ts.URL, "whoever", "whatever"), 302, "Location", "/doc/page/main.asp")
	resp, body := do(t, c, "GET", ts.URL+"/ISAPI/System/deviceInfo", nil)
	expect(t, resp, 200, "Content-Type", "application/xml; charset=utf-8")
	if !strings.Contains(body, "<model>"+Model+"</model>") {
		t.Fatalf("deviceInfo = %s", body)
	}
}

// digestAuthorization answers a Digest challenge as a browser would.
func digestAuthorization(t *testing.T, challenge, user, pass, method, uri string) string {
	t.Helper()
	p := map[string]string{}
	for _, m := range regexp.MustCompile(`(\w+)=(?:"([^"]*)"|([^,\s]*))`).FindAllStringSubmatch(challenge, -1) {
		p[m[1]] = m[2] + m[3]
	}
	if !strings.HasPrefix(challenge, "Digest ") || p["qop"] != "auth" || p["algorithm"] != "MD5" || p["nonce"] == "" {
		t.Fatalf("challenge %q", challenge)
	}
	h := func(s string) string { sum := md5.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }
	cnonce, nc := "0a4f113b", "00000001"
	resp := h(h(user+":"+p["realm"]+":"+pass) + ":" + p["nonce"] + ":" + nc + ":" + cnonce + ":auth:" + h(method+":"+uri))
	return fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", algorithm=MD5, qop=auth, nc=%s, cnonce="%s", response="%s", opaque="%s"`,
		user, p["realm"], p["nonce"], uri, nc, cnonce, resp, p["opaque"])
}

func TestDigest(t *testing.T) {
	cam := New(Options{Username: "admin", Password: "s3cret", Realm: "Hik camera"})
	ts := httptest.NewServer(cam.Handler())
	defer ts.Close()
	c := newClient(t, ts.Client())
	info := ts.URL + "/ISAPI/System/deviceInfo"

	resp, _ := do(t, c, "GET", info, nil)
	expect(t, resp, 403, "", "") // no session yet
	expect(t, login(t, c, ts.URL, "admin", "s3cret"), 302, "", "")

	resp, _ = do(t, c, "GET", info, nil)
	expect(t, resp, 401, "", "")
	chal := resp.Header.Get("WWW-Authenticate")
	auth := digestAuthorization(t, chal, "admin", "s3cret", "GET", "/ISAPI/System/deviceInfo")
	resp, body := do(t, c, "GET", info, nil, "Authorization", auth)
	expect(t, resp, 200, "", "")
	if !strings.Contains(body, "<model>DS-2CD-STANDIN</model>") {
		t.Fatalf("deviceInfo = %s", body)
	}

	// A browser behind the proxy hashes the URL it sees: accepted, recorded.
	resp, _ = do(t, c, "GET", info, nil)
	chal = resp.Header.Get("WWW-Authenticate")
	proxied := digestAuthorization(t, chal, "admin", "s3cret", "GET", "/c/cam1/ISAPI/System/deviceInfo")
	resp, _ = do(t, c, "GET", info, nil, "Authorization", proxied)
	expect(t, resp, 200, "", "")
	if got := cam.LastAuthURI(); got != "/c/cam1/ISAPI/System/deviceInfo" {
		t.Fatalf("last auth uri %q", got)
	}

	for name, a := range map[string]string{
		"wrong password": digestAuthorization(t, chal, "admin", "nope", "GET", "/ISAPI/System/deviceInfo"),
		"wrong user":     digestAuthorization(t, chal, "root", "s3cret", "GET", "/ISAPI/System/deviceInfo"),
		"tampered uri":   strings.Replace(proxied, `uri="/c/cam1`, `uri="/c/cam2`, 1),
		"unknown nonce":  regexp.MustCompile(`nonce="[0-9a-f]+"`).ReplaceAllString(proxied, `nonce="feedface"`),
		"basic":          "Basic YWRtaW46czNjcmV0",
	} {
		resp, _ = do(t, c, "GET", info, nil, "Authorization", a)
		if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Digest ") {
			t.Errorf("%s: status %d", name, resp.StatusCode)
		}
	}
	uris := cam.AuthURIs()
	if len(uris) != 6 || uris[0] != "/ISAPI/System/deviceInfo" || uris[1] != "/c/cam1/ISAPI/System/deviceInfo" ||
		!slices.Contains(uris, "/c/cam2/ISAPI/System/deviceInfo") {
		t.Errorf("auth uris = %q", uris)
	}

	// The session cookie is still required on top of Digest.
	resp, _ = do(t, ts.Client(), "GET", info, nil, "Authorization", proxied)
	expect(t, resp, 403, "", "")
}

func TestParseDigest(t *testing.T) {
	p, ok := parseDigest(`Digest username="a\"b", realm="x, y",nc=00000001 , qop=auth,uri="/p?q=1"`)
	if !ok || p["username"] != `a"b` || p["realm"] != "x, y" || p["nc"] != "00000001" || p["qop"] != "auth" || p["uri"] != "/p?q=1" {
		t.Fatalf("%v %q", ok, p)
	}
	realm := `cam "7" \ x`
	if p, _ := parseDigest(New(Options{Realm: realm}).challenge(true)); p["realm"] != realm || p["stale"] != "true" {
		t.Errorf("challenge round trip: %q", p)
	}
	for _, bad := range []string{"", "Basic abc", `Digest realm="open`, "Digest junk"} {
		if _, ok := parseDigest(bad); ok {
			t.Errorf("parsed %q", bad)
		}
	}
}

func TestMJPEG(t *testing.T) {
	cam := New(Options{})
	srv, err := cam.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	start := time.Now()
	resp, err := http.Get(srv.URL + "/ISAPI/Streaming/channels/101/httpPreview")
	if err != nil {
		t.Fatal(err)
	}
	mt, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "multipart/x-mixed-replace" || params["boundary"] == "" {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	for i := range 4 {
		part, err := mr.NextPart()
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if part.Header.Get("Content-Type") != "image/jpeg" {
			t.Fatalf("part %d: %q", i, part.Header)
		}
		img, err := jpeg.Decode(part)
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if b := img.Bounds(); b.Dx() != 64 || b.Dy() != 48 || FrameCounter(img) != i {
			t.Fatalf("part %d: %v counter %d", i, b, FrameCounter(img))
		}
		if d := time.Since(start); i == 0 && d > 3*tick/2 {
			t.Errorf("first frame after %v: not flushed", d) // ~1 KB frames, 4 KB buffer
		}
	}
	if d := time.Since(start); d < 3*tick-20*time.Millisecond {
		t.Errorf("4 frames in %v: not paced", d)
	}
	resp.Body.Close()

	// The handler notices the client left and stops counting.
	testwait.For(t, 5*time.Second, "the stream to stop", func() bool {
		n := cam.MJPEGFrames()
		time.Sleep(3 * tick) // deliberate: stopped means no frame for three frame intervals
		return n == cam.MJPEGFrames()
	})
	if n := cam.MJPEGFrames(); n < 4 || n > 8 {
		t.Errorf("frames sent = %d", n)
	}

	// ?frames=N ends the stream with the closing boundary.
	resp, err = http.Get(srv.URL + "/ISAPI/Streaming/channels/101/httpPreview?frames=2")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	mr = multipart.NewReader(resp.Body, boundary)
	for i := range 3 {
		_, err := mr.NextPart()
		if (i < 2) != (err == nil) || (i == 2 && err != io.EOF) {
			t.Fatalf("part %d: %v", i, err)
		}
	}
	if s := cam.MJPEGStreams(); len(s) != 2 || s[1] != 2 {
		t.Errorf("streams = %v", s)
	}
}

func echo(t *testing.T, ctx context.Context, ws *websocket.Conn, typ websocket.MessageType, msg []byte) {
	t.Helper()
	if err := ws.Write(ctx, typ, msg); err != nil {
		t.Fatal(err)
	}
	gotTyp, got, err := ws.Read(ctx)
	if err != nil || gotTyp != typ || !bytes.Equal(got, msg) {
		t.Fatalf("echo of %d bytes: type %v, %d bytes, %v", len(msg), gotTyp, len(got), err)
	}
}

func TestWebSocketEcho(t *testing.T) {
	cam := New(Options{})
	ts := httptest.NewServer(cam.Handler())
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A foreign Origin, as when the page is served through a proxy.
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+"/ws/echo",
		&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://relay.example"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)
	for i := 1; i <= 3; i++ {
		echo(t, ctx, ws, websocket.MessageText, fmt.Appendf(nil, "ping-%d", i))
	}
	big := make([]byte, 300<<10)
	for i := range big {
		big[i] = byte(i * 7)
	}
	echo(t, ctx, ws, websocket.MessageBinary, big)
	if err := ws.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	if n := cam.WSEchoes(); n != 4 {
		t.Errorf("echoes = %d", n)
	}
}

func TestUpload50MB(t *testing.T) {
	cam := New(Options{})
	ts := httptest.NewServer(cam.Handler())
	defer ts.Close()
	const size = 50 << 20
	h := sha256.New()
	io.Copy(h, UploadPattern(size))
	var want [32]byte
	h.Sum(want[:0])

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	req, _ := http.NewRequest("POST", ts.URL+"/ISAPI/System/updateFirmware", UploadPattern(size))
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Bytes  int64  `json:"bytes"`
		SHA256 string `json:"sha256"`
	}
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	runtime.ReadMemStats(&after)
	if err != nil || resp.StatusCode != 200 || got.Bytes != size || got.SHA256 != hex.EncodeToString(want[:]) {
		t.Fatalf("status %d, answer %+v, %v", resp.StatusCode, got, err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("upload allocated %d MB: body buffered?", alloc>>20)
	}

	// A browser form posts multipart: the file part is what is hashed.
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("note", "ignored")
	fw, _ := mw.CreateFormFile("firmware", "digicap.dav")
	fw.Write([]byte("firmware image"))
	mw.Close()
	resp, answer := do(t, ts.Client(), "POST", ts.URL+"/ISAPI/System/updateFirmware", &body, "Content-Type", mw.FormDataContentType())
	expect(t, resp, 200, "Content-Type", "application/json")
	small := sha256.Sum256([]byte("firmware image"))
	if !strings.Contains(answer, `"bytes":14`) || !strings.Contains(answer, hex.EncodeToString(small[:])) {
		t.Errorf("multipart answer %s", answer)
	}

	if u := cam.Uploads(); len(u) != 2 || u[0] != (UploadResult{size, want}) || u[1] != (UploadResult{14, small}) {
		t.Errorf("uploads = %+v", u)
	}
}

func TestServerSentEvents(t *testing.T) {
	cam := New(Options{})
	ts := httptest.NewServer(cam.Handler())
	defer ts.Close()
	start := time.Now()
	resp, err := http.Get(ts.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	var events []string
	var firstAt time.Duration
	for len(events) < 3 && sc.Scan() {
		if line := sc.Text(); line != "" {
			events = append(events, line)
			if len(events) == 1 {
				firstAt = time.Since(start)
			}
		}
	}
	resp.Body.Close()
	if !slices.Equal(events, []string{"data: tick 1", "data: tick 2", "data: tick 3"}) {
		t.Fatalf("events = %q (%v)", events, sc.Err())
	}
	// Flushed one by one: the first arrives at once, the third two ticks on.
	if total := time.Since(start); firstAt > tick || total < 2*tick-20*time.Millisecond {
		t.Errorf("first event after %v, third after %v", firstAt, total)
	}

	_, body := do(t, ts.Client(), "GET", ts.URL+"/events?n=2", nil)
	if body != "data: tick 1\n\ndata: tick 2\n\n" {
		t.Errorf("bounded stream = %q", body)
	}
}

func TestNotFoundAndOddRedirects(t *testing.T) {
	cam := New(Options{})
	ts := httptest.NewServer(cam.Handler())
	defer ts.Close()
	c := newClient(t, ts.Client())
	for _, p := range []string{"/doc/page/missing.asp", "/doc/script/nope.js", "/SDK/webLanguage?x=1"} {
		resp, _ := do(t, c, "GET", ts.URL+p, nil)
		expect(t, resp, 404, "", "")
	}
	resp, _ := do(t, c, "POST", ts.URL+"/", nil)
	expect(t, resp, 404, "", "")
	if nf := cam.NotFound(); !slices.Equal(nf, []string{"/doc/page/missing.asp", "/doc/script/nope.js", "/SDK/webLanguage", "/"}) {
		t.Errorf("not found = %q", nf)
	}

	resp, _ = do(t, c, "GET", ts.URL+"/redirect-refresh", nil)
	expect(t, resp, 200, "Refresh", "0; url=/doc/page/login.asp")
	resp, body := do(t, c, "GET", ts.URL+"/content-location", nil)
	expect(t, resp, 200, "Content-Location", "/doc/page/login.asp")
	if !strings.Contains(body, `action="/ISAPI/Security/sessionLogin"`) {
		t.Errorf("content-location body %q", body)
	}
}

func TestTLSServer(t *testing.T) {
	cam := New(Options{TLS: true})
	srv, err := cam.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(srv.URL, "https://127.0.0.1:") {
		t.Fatalf("url %q", srv.URL)
	}
	sum := sha256.Sum256(srv.Certificate.Raw)
	if srv.Fingerprint != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Fatalf("fingerprint %q", srv.Fingerprint)
	}

	// Untrusted by default, trusted by Client.
	if _, err := http.Get(srv.URL + "/"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("self-signed cert accepted by default client: %v", err)
	}
	c := newClient(t, srv.Client())
	resp, _ := do(t, c, "GET", srv.URL+"/?abs=1", nil)
	expect(t, resp, 302, "Location", srv.URL+"/doc/page/login.asp")
	if resp.TLS == nil || resp.TLS.NegotiatedProtocol == "h2" {
		t.Fatalf("tls state %+v", resp.TLS)
	}

	// wss, then Close ends the open WebSocket and MJPEG stream.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "wss"+strings.TrimPrefix(srv.URL, "https")+"/ws/echo",
		&websocket.DialOptions{HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	echo(t, ctx, ws, websocket.MessageText, []byte("over tls"))
	stream, err := srv.Client().Get(srv.URL + "/ISAPI/Streaming/channels/101/httpPreview")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	testwait.For(t, 5*time.Second, "the first frame", func() bool { return cam.MJPEGFrames() > 0 })

	closed := time.Now()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(closed); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
	if _, _, err := ws.Read(ctx); err == nil {
		t.Error("websocket still open after Close")
	}
	io.Copy(io.Discard, stream.Body) // returns: the stream ended
	if n := cam.MJPEGStreams()[0]; n > 50 {
		t.Errorf("%d frames before Close", n)
	}
}
