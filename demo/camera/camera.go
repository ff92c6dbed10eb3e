// Package camera is a stand-in IP camera web UI. It behaves the way real
// camera UIs (Hikvision, Dahua, Axis) do where that hurts a reverse proxy
// mounted under a prefix such as /c/{handle}/: every link, redirect, cookie
// and script-built URL is an absolute path ("/doc/page/login.asp") or an
// absolute URL, never relative. It also streams MJPEG, Server-Sent Events and
// WebSocket echoes, accepts large uploads without buffering them, and guards
// its API with HTTP Digest auth, so tests can prove a proxy survives all of
// that. Everything it sees is recorded for inspection.
package camera

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Model is the model name in /ISAPI/System/deviceInfo.
const Model = "DS-2CD-STANDIN"

// tick is the pace of MJPEG frames and SSE events.
const tick = 100 * time.Millisecond

// Options configure a Camera.
type Options struct {
	// Username and Password guard the login form and, as HTTP Digest
	// credentials, the ISAPI device info. Empty: any login works, no Digest.
	Username, Password string
	Realm              string // Digest realm; default "IP Camera(STANDIN)"
	TLS                bool   // Start serves HTTPS with a fresh self-signed cert
}

// UploadResult is one firmware upload as the camera received it.
type UploadResult struct {
	Bytes  int64
	SHA256 [32]byte
}

// Camera is the stand-in camera; its counters are safe for concurrent use.
type Camera struct {
	o      Options
	opaque string
	mux    *http.ServeMux

	mu        sync.Mutex
	sessions  map[string]bool
	nonces    map[string]time.Time // Digest nonce -> issued at
	requests  []string
	hosts     []string
	notFound  []string
	authURIs  []string
	uploads   []UploadResult
	mjpeg     []int // frames sent, per MJPEG connection
	wsEchoes  int
	sseEvents int
}

// New returns a camera; serve it with Handler or Start.
func New(o Options) *Camera {
	if o.Realm == "" {
		o.Realm = "IP Camera(STANDIN)"
	}
	c := &Camera{o: o, opaque: randomHex(8), mux: http.NewServeMux(),
		sessions: map[string]bool{}, nonces: map[string]time.Time{}}
	m := c.mux
	m.HandleFunc("GET /{$}", c.root)
	m.HandleFunc("GET /doc/page/login.asp", page(loginHTML))
	m.HandleFunc("POST /ISAPI/Security/sessionLogin", c.login)
	m.HandleFunc("GET /doc/page/main.asp", c.mainPage)
	m.HandleFunc("GET /ISAPI/System/deviceInfo", c.deviceInfo)
	m.HandleFunc("GET /ISAPI/Streaming/channels/101/httpPreview", c.mjpegStream)
	m.HandleFunc("GET /ws/echo", c.wsEcho)
	m.HandleFunc("POST /ISAPI/System/updateFirmware", c.upload)
	m.HandleFunc("GET /events", c.events)
	m.HandleFunc("GET /doc/css/main.css", static("text/css; charset=utf-8", mainCSS))
	m.HandleFunc("GET /doc/script/{name}", c.script)
	m.HandleFunc("GET /doc/img/logo.png", func(w http.ResponseWriter, r *http.Request) {
		static("image/png", string(logoPNG()))(w, r)
	})
	m.HandleFunc("GET /redirect-refresh", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Refresh", "0; url=/doc/page/login.asp")
		page(`<!doctype html><title>Redirecting</title><p>Redirecting to the login page.`)(w, r)
	})
	m.HandleFunc("GET /content-location", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Location", "/doc/page/login.asp")
		page(loginHTML)(w, r)
	})
	m.HandleFunc("/", c.notFoundHandler)
	return c
}

// Handler serves the camera UI, recording every request.
func (c *Camera) Handler() http.Handler { return c }

func (c *Camera) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.requests = append(c.requests, r.Method+" "+r.URL.RequestURI())
	c.hosts = append(c.hosts, r.Host)
	c.mu.Unlock()
	w.Header().Set("Server", "App-webs/") // what Hikvision firmware sends
	c.mux.ServeHTTP(w, r)
}

// Requests lists "METHOD /path?query" of every request, in arrival order.
func (c *Camera) Requests() []string { return c.snapshot(&c.requests) }

// Hosts lists the Host header of every request, in arrival order.
func (c *Camera) Hosts() []string { return c.snapshot(&c.hosts) }

// NotFound lists the paths answered with 404, in order.
func (c *Camera) NotFound() []string { return c.snapshot(&c.notFound) }

// AuthURIs lists the uri= parameter of every Digest Authorization header
// seen, in order; the last one is the most recent. A browser behind a proxy
// computes it from the URL it sees, so it tells what the proxy passed on.
func (c *Camera) AuthURIs() []string { return c.snapshot(&c.authURIs) }

// LastAuthURI is the most recent Digest uri= parameter, "" if none.
func (c *Camera) LastAuthURI() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.authURIs) == 0 {
		return ""
	}
	return c.authURIs[len(c.authURIs)-1]
}

// Uploads lists the completed firmware uploads, in order.
func (c *Camera) Uploads() []UploadResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]UploadResult(nil), c.uploads...)
}

// MJPEGFrames is the number of MJPEG frames sent over all connections.
func (c *Camera) MJPEGFrames() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, f := range c.mjpeg {
		n += f
	}
	return n
}

// MJPEGStreams lists the frames sent on each MJPEG connection, in the order
// the connections opened.
func (c *Camera) MJPEGStreams() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.mjpeg...)
}

// WSEchoes is the number of WebSocket messages echoed.
func (c *Camera) WSEchoes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wsEchoes
}

// SSEEvents is the number of server-sent events written.
func (c *Camera) SSEEvents() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sseEvents
}

func (c *Camera) snapshot(s *[]string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), *s...)
}

func (c *Camera) notFoundHandler(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.notFound = append(c.notFound, r.URL.Path)
	c.mu.Unlock()
	http.NotFound(w, r)
}

// root redirects to the login page by absolute path, or with ?abs=1 by
// absolute URL built from the Host header, as some firmwares do.
func (c *Camera) root(w http.ResponseWriter, r *http.Request) {
	loc := "/doc/page/login.asp"
	if r.URL.Query().Get("abs") == "1" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		loc = scheme + "://" + r.Host + loc
	}
	http.Redirect(w, r, loc, http.StatusFound)
}

func (c *Camera) login(w http.ResponseWriter, r *http.Request) {
	user, pass := r.PostFormValue("user"), r.PostFormValue("pass")
	if c.o.Username != "" || c.o.Password != "" {
		okU := subtle.ConstantTimeCompare([]byte(user), []byte(c.o.Username))
		okP := subtle.ConstantTimeCompare([]byte(pass), []byte(c.o.Password))
		if okU&okP != 1 {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, loginFailedHTML)
			return
		}
	}
	sid := randomHex(16)
	c.mu.Lock()
	c.sessions[sid] = true
	c.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: "WebSession", Value: sid, Path: "/", HttpOnly: true})
	http.Redirect(w, r, "/doc/page/main.asp", http.StatusFound)
}

func (c *Camera) hasSession(r *http.Request) bool {
	ck, err := r.Cookie("WebSession")
	if err != nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessions[ck.Value]
}

func (c *Camera) mainPage(w http.ResponseWriter, r *http.Request) {
	if !c.hasSession(r) {
		http.Redirect(w, r, "/doc/page/login.asp", http.StatusFound)
		return
	}
	page(mainHTML)(w, r)
}

// deviceInfo needs the session cookie (403 without) and, when credentials
// are configured, HTTP Digest auth (401 with a challenge without).
func (c *Camera) deviceInfo(w http.ResponseWriter, r *http.Request) {
	if !c.hasSession(r) {
		http.Error(w, "session required", http.StatusForbidden)
		return
	}
	if c.o.Username != "" || c.o.Password != "" {
		if ok, stale := c.checkDigest(r); !ok {
			w.Header().Set("WWW-Authenticate", c.challenge(stale))
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<DeviceInfo><deviceName>Stand-in camera</deviceName><model>%s</model></DeviceInfo>`+"\n", Model)
}

func (c *Camera) wsEcho(w http.ResponseWriter, r *http.Request) {
	// The origin is the proxy's, not ours: skip the same-origin check.
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	defer ws.CloseNow()
	ws.SetReadLimit(16 << 20)
	ctx := r.Context()
	for {
		typ, rd, err := ws.Reader(ctx)
		if err != nil {
			return
		}
		wr, err := ws.Writer(ctx, typ)
		if err != nil {
			return
		}
		if _, err := io.Copy(wr, rd); err != nil {
			return
		}
		if err := wr.Close(); err != nil {
			return
		}
		c.mu.Lock()
		c.wsEchoes++
		c.mu.Unlock()
	}
}

// upload hashes the body as it streams in: the raw body, or for a
// multipart/form-data post the first file part. It never holds it whole.
func (c *Camera) upload(w http.ResponseWriter, r *http.Request) {
	h := sha256.New()
	n, err := hashBody(h, r)
	if err != nil {
		http.Error(w, "upload: "+err.Error(), http.StatusBadRequest)
		return
	}
	res := UploadResult{Bytes: n}
	h.Sum(res.SHA256[:0])
	c.mu.Lock()
	c.uploads = append(c.uploads, res)
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"bytes": n, "sha256": hex.EncodeToString(res.SHA256[:])})
}

func hashBody(h hash.Hash, r *http.Request) (int64, error) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "multipart/form-data" {
		return io.Copy(h, r.Body)
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return 0, err
	}
	for {
		p, err := mr.NextPart()
		if err != nil {
			if err == io.EOF {
				err = errors.New("no file part")
			}
			return 0, err
		}
		if p.FileName() != "" {
			return io.Copy(h, p)
		}
	}
}

// events sends "data: tick N" every 100 ms until the client goes away, or
// after ?n= events.
func (c *Camera) events(w http.ResponseWriter, r *http.Request) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("n"))
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	rc := http.NewResponseController(w)
	t := time.NewTicker(tick)
	defer t.Stop()
	for i := 1; limit <= 0 || i <= limit; i++ {
		if _, err := fmt.Fprintf(w, "data: tick %d\n\n", i); err != nil {
			return
		}
		if rc.Flush() != nil {
			return
		}
		c.mu.Lock()
		c.sseEvents++
		c.mu.Unlock()
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}

func (c *Camera) script(w http.ResponseWriter, r *http.Request) {
	js, ok := scripts[r.PathValue("name")]
	if !ok {
		c.notFoundHandler(w, r)
		return
	}
	static("text/javascript; charset=utf-8", js)(w, r)
}

func page(html string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, html)
	}
}

func static(ctype, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		io.WriteString(w, body)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// UploadPattern is the body the UI's upload(n) JavaScript posts: n bytes,
// byte i being i%251. Tests hash it to know the expected checksum.
func UploadPattern(n int64) io.Reader { return &pattern{n: n} }

type pattern struct{ off, n int64 }

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.n-p.off)]
	for i := range b {
		b[i] = byte((p.off + int64(i)) % 251)
	}
	p.off += int64(len(b))
	return len(b), nil
}
