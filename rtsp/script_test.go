package rtsp

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nanodems/connector/internal/testwait"
)

// scriptCam is a hand-written RTSP camera whose answers a test scripts:
// for the quirks gortsplib does not have (absolute controls, another
// host in its URLs, GET_PARAMETER refused, requests of its own).
type scriptCam struct {
	t      *testing.T
	ln     net.Listener
	addr   string
	answer func(sc *scriptConn, req *Request) *Response

	mu    sync.Mutex
	reqs  []*Request
	conns []*scriptConn
}

type scriptConn struct {
	cam *scriptCam
	c   net.Conn
	wmu sync.Mutex
	// frames from the client
	fmu    sync.Mutex
	frames [][]byte
	resps  []*Response
}

func startScriptCam(t *testing.T, answer func(sc *scriptConn, req *Request) *Response) *scriptCam {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cam := &scriptCam{t: t, ln: ln, addr: ln.Addr().String(), answer: answer}
	t.Cleanup(func() {
		ln.Close()
		cam.mu.Lock()
		for _, c := range cam.conns {
			c.c.Close()
		}
		cam.mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			sc := &scriptConn{cam: cam, c: c}
			cam.mu.Lock()
			cam.conns = append(cam.conns, sc)
			cam.mu.Unlock()
			go sc.serve()
		}
	}()
	return cam
}

func (sc *scriptConn) serve() {
	rd := NewReader(sc.c, 4096, Limits{})
	for {
		it, err := rd.Next()
		if err != nil {
			return
		}
		switch it.Kind {
		case KindFrame:
			sc.fmu.Lock()
			sc.frames = append(sc.frames, append([]byte(nil), it.Frame...))
			sc.fmu.Unlock()
		case KindResponse:
			sc.fmu.Lock()
			sc.resps = append(sc.resps, it.Resp)
			sc.fmu.Unlock()
		case KindRequest:
			sc.cam.mu.Lock()
			sc.cam.reqs = append(sc.cam.reqs, it.Req)
			sc.cam.mu.Unlock()
			resp := sc.cam.answer(sc, it.Req)
			if resp == nil {
				continue
			}
			if resp.Header.Get("CSeq") == "" {
				resp.Header = append(Header{{"CSeq", it.Req.CSeq()}}, resp.Header...)
			}
			sc.send(resp.AppendTo(nil))
		}
	}
}

func (sc *scriptConn) send(b []byte) {
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	sc.c.Write(b)
}

func (sc *scriptConn) frame(ch byte, payload []byte) {
	sc.send(append(AppendFrameHeader(nil, ch, len(payload)), payload...))
}

func (cam *scriptCam) requests() []*Request {
	cam.mu.Lock()
	defer cam.mu.Unlock()
	return append([]*Request(nil), cam.reqs...)
}

func (cam *scriptCam) methods() string {
	var m []string
	for _, r := range cam.requests() {
		m = append(m, r.Method)
	}
	return strings.Join(m, " ")
}

func (cam *scriptCam) waitMethod(t *testing.T, method string, n int, timeout time.Duration) {
	t.Helper()
	if err := testwait.Until(timeout, func() error {
		if got := cam.methods(); strings.Count(" "+got+" ", " "+method+" ") < n {
			return fmt.Errorf("camera got %s, want %d× %s", got, n, method)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// quirkyAnswers plays a camera that names itself by another address
// (10.9.9.9) in every URL, uses absolute controls, and times sessions out
// after timeout seconds.
func quirkyAnswers(timeout int, getParam int) func(sc *scriptConn, req *Request) *Response {
	const self = "rtsp://10.9.9.9:554"
	return func(sc *scriptConn, req *Request) *Response {
		ok := &Response{StatusCode: 200}
		sess := fmt.Sprintf("SESS42;timeout=%d", timeout)
		switch req.Method {
		case "OPTIONS":
			ok.Header = Header{{"Public", "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER"}}
		case "DESCRIBE":
			path := req.URL[strings.Index(req.URL[7:], "/")+7:]
			sdp := "v=0\r\no=- 1 1 IN IP4 10.9.9.9\r\ns=cam\r\na=control:" + self + path + "/\r\na=range:npt=0-\r\n" +
				"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:" + self + path + "/trackID=1\r\n" +
				"m=audio 0 RTP/AVP 0\r\na=control:trackID=2\r\n"
			ok.Header = Header{{"Content-Base", self + path + "/"}, {"Content-Location", self + path}, {"Content-Type", "application/sdp"}}
			ok.Body = []byte(sdp)
		case "SETUP":
			ok.Header = Header{{"Transport", req.Header.Get("Transport") + ";ssrc=1234ABCD"}, {"Session", sess}}
		case "PLAY":
			ok.Header = Header{{"Session", sess}, {"Range", "npt=0.000-"},
				{"RTP-Info", "url=" + self + "/live/trackID=1;seq=100;rtptime=5,url=" + self + "/live/trackID=2;seq=7"}}
		case "GET_PARAMETER":
			if getParam != 200 {
				return &Response{StatusCode: getParam}
			}
			ok.Header = Header{{"Session", sess}}
		case "TEARDOWN":
		default:
			return &Response{StatusCode: 501}
		}
		return ok
	}
}

func scriptGateway(t *testing.T, mode ListenerMode, cam *scriptCam, adjust ...func(*Config)) (*Gateway, *fakeBackend) {
	b := newFakeBackend()
	b.add(testHandle, fakeDevice{tenant: "t1", addr: cam.addr})
	return startGateway(t, b, mode, adjust...), b
}

// TestRewriting: every URL of the camera's answers points at the relay,
// whatever host the camera names, and every URL the camera gets is its
// own; absolute controls, Content-Base, Content-Location, RTP-Info, and a
// Content-Length that matches the rewritten SDP.
func TestRewriting(t *testing.T) {
	modes(t, func(t *testing.T, mode ListenerMode) {
		for _, share := range []bool{false, true} {
			cam := startScriptCam(t, quirkyAnswers(60, 200))
			g, _ := scriptGateway(t, mode, cam, func(c *Config) { c.NoFanOut = !share })
			rc := dialRaw(t, g.Addr())
			base := "rtsp://" + g.Addr() + "/" + testHandle
			resp := rc.do("DESCRIBE", base+"/live?nd_grant=ok.t1")
			if resp.StatusCode != 200 {
				t.Fatalf("DESCRIBE %d", resp.StatusCode)
			}
			if cb := resp.Header.Get("Content-Base"); cb != base+"/live/" {
				t.Fatalf("Content-Base %s, want %s/live/", cb, base)
			}
			if cl := resp.Header.Get("Content-Location"); cl != base+"/live" {
				t.Fatalf("Content-Location %s", cl)
			}
			if strings.Contains(string(resp.Body), "rtsp://10.9.9.9") || !strings.Contains(string(resp.Body), "a=control:"+base+"/live/trackID=1\r\n") {
				t.Fatalf("SDP not rewritten:\n%s", resp.Body)
			}
			if n, _ := strconv.Atoi(resp.Header.Get("Content-Length")); n != len(resp.Body) {
				t.Fatalf("Content-Length %d for %d bytes", n, len(resp.Body))
			}
			resp = rc.do("SETUP", base+"/live/trackID=1", "Transport", "RTP/AVP/TCP;unicast")
			if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Transport"), "interleaved=0-1") {
				t.Fatalf("SETUP %d %s", resp.StatusCode, resp.Header.Get("Transport"))
			}
			sess := resp.Header.Get("Session")
			if sess != "SESS42;timeout=60" {
				t.Fatalf("Session %q, want the camera's untouched", sess)
			}
			resp = rc.do("SETUP", base+"/live/trackID=2", "Transport", "RTP/AVP/TCP;unicast", "Session", "SESS42")
			if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Transport"), "interleaved=2-3") {
				t.Fatalf("second SETUP %d %s: want channels assigned 2-3", resp.StatusCode, resp.Header.Get("Transport"))
			}
			resp = rc.do("PLAY", base+"/live/", "Session", "SESS42")
			if resp.StatusCode != 200 {
				t.Fatalf("PLAY %d", resp.StatusCode)
			}
			if ri := resp.Header.Get("RTP-Info"); ri != "url="+base+"/live/trackID=1;seq=100;rtptime=5,url="+base+"/live/trackID=2;seq=7" {
				t.Fatalf("RTP-Info %s", ri)
			}
			// What the camera saw: its own host and port, no grant.
			for _, r := range cam.requests() {
				if r.Method == "OPTIONS" {
					continue
				}
				if !strings.HasPrefix(r.URL, "rtsp://"+cam.addr+"/live") || strings.Contains(r.URL, "nd_grant") {
					t.Fatalf("camera saw %s %s", r.Method, r.URL)
				}
				if r.Method == "SETUP" && !strings.Contains(r.Header.Get("Transport"), "interleaved=") {
					t.Fatalf("camera SETUP without channels: %s", r.Header.Get("Transport"))
				}
			}
			rc.do("TEARDOWN", base+"/live/", "Session", "SESS42")
			cam.waitMethod(t, "TEARDOWN", 1, 5*time.Second)
		}
	})
}

// TestKeepaliveForConvertedSession: a UDP client that sends nothing after
// PLAY; the gateway keeps the camera's session alive, and falls back to
// OPTIONS for a camera that refuses GET_PARAMETER.
func TestKeepaliveForConvertedSession(t *testing.T) {
	modes(t, func(t *testing.T, mode ListenerMode) {
		for _, getParam := range []int{200, 405} {
			cam := startScriptCam(t, quirkyAnswers(2, getParam))
			g, _ := scriptGateway(t, mode, cam, func(c *Config) { c.NoFanOut = true })
			udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer udp.Close()
			port := udp.LocalAddr().(*net.UDPAddr).Port
			rc := dialRaw(t, g.Addr())
			base := "rtsp://" + g.Addr() + "/" + testHandle
			rc.do("DESCRIBE", base+"/live?nd_grant=ok.t1")
			resp := rc.do("SETUP", base+"/live/trackID=1", "Transport", fmt.Sprintf("RTP/AVP;unicast;client_port=%d-%d", port, port+1))
			tr, _ := ParseTransports(resp.Header.Get("Transport"))
			if resp.StatusCode != 200 || tr[0].IsTCP() {
				t.Fatalf("SETUP %d %s", resp.StatusCode, resp.Header.Get("Transport"))
			}
			if _, _, ok := tr[0].Ports("server_port"); !ok {
				t.Fatalf("no server_port: %s", resp.Header.Get("Transport"))
			}
			if v, _ := tr[0].Get("ssrc"); v != "1234ABCD" {
				t.Fatalf("camera's ssrc lost: %s", resp.Header.Get("Transport"))
			}
			// The camera got interleaved TCP.
			for _, r := range cam.requests() {
				if r.Method == "SETUP" && !strings.HasPrefix(r.Header.Get("Transport"), "RTP/AVP/TCP;unicast;interleaved=") {
					t.Fatalf("camera SETUP transport %s", r.Header.Get("Transport"))
				}
			}
			rc.do("PLAY", base+"/live/", "Session", "SESS42")
			// Packets of the camera reach the client's UDP port.
			cam.mu.Lock()
			sc := cam.conns[len(cam.conns)-1]
			cam.mu.Unlock()
			sc.frame(0, []byte{0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0x65})
			udp.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 2048)
			n, from, err := udp.ReadFromUDP(buf)
			if err != nil || n != 13 {
				t.Fatalf("UDP packet: %d %v", n, err)
			}
			// The client's receiver report goes back to the camera,
			// interleaved on the RTCP channel.
			rr := []byte{0x80, 201, 0, 1, 0, 0, 0, 1}
			udp.WriteToUDP(rr, &net.UDPAddr{IP: from.IP, Port: from.Port + 1})
			testwait.For(t, 5*time.Second, "the receiver report at the camera", func() bool {
				sc.fmu.Lock()
				defer sc.fmu.Unlock()
				return len(sc.frames) > 0 && sc.frames[0][1] == 1 && string(sc.frames[0][4:]) == string(rr)
			})
			// timeout=2: keepalives every second.
			if getParam == 200 {
				cam.waitMethod(t, "GET_PARAMETER", 2, 5*time.Second)
			} else {
				cam.waitMethod(t, "OPTIONS", 2, 5*time.Second)
			}
		}
	})
}

// TestCameraRequestsReachClient: a camera's own request (SET_PARAMETER
// here) goes to the client with URLs rewritten, and the client's answer
// back to the camera.
func TestCameraRequestsReachClient(t *testing.T) {
	modes(t, func(t *testing.T, mode ListenerMode) {
		cam := startScriptCam(t, quirkyAnswers(60, 200))
		g, _ := scriptGateway(t, mode, cam, func(c *Config) { c.NoFanOut = true })
		rc := dialRaw(t, g.Addr())
		base := "rtsp://" + g.Addr() + "/" + testHandle
		rc.do("DESCRIBE", base+"/live?nd_grant=ok.t1")
		cam.mu.Lock()
		sc := cam.conns[0]
		cam.mu.Unlock()
		sc.send([]byte("SET_PARAMETER rtsp://10.9.9.9:554/live RTSP/1.0\r\nCSeq: 77\r\n\r\n"))
		rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		it, err := rc.rd.Next()
		if err != nil || it.Kind != KindRequest || it.Req.URL != base+"/live" || it.Req.CSeq() != "77" {
			t.Fatalf("client got %+v %v", it.Req, err)
		}
		rc.c.Write([]byte("RTSP/1.0 200 OK\r\nCSeq: 77\r\n\r\n"))
		testwait.For(t, 5*time.Second, "the client's answer at the camera", func() bool {
			sc.fmu.Lock()
			defer sc.fmu.Unlock()
			return len(sc.resps) == 1
		})
	})
}

// TestStoredBasicLogin: the gateway answers a Basic challenge with the
// stored login and hides the challenge when the login is wrong.
func TestStoredBasicLogin(t *testing.T) {
	modes(t, func(t *testing.T, mode ListenerMode) {
		for _, pass := range []string{"right", "wrong"} {
			cam := startScriptCam(t, func(sc *scriptConn, req *Request) *Response {
				if req.Header.Get("Authorization") != "Basic "+b64("admin:right") {
					return &Response{StatusCode: 401, Header: Header{{"WWW-Authenticate", `Basic realm="cam"`}}}
				}
				return quirkyAnswers(60, 200)(sc, req)
			})
			b := newFakeBackend()
			b.add(testHandle, fakeDevice{tenant: "t1", addr: cam.addr, user: "admin", pass: pass})
			g := startGateway(t, b, mode)
			rc := dialRaw(t, g.Addr())
			resp := rc.do("DESCRIBE", "rtsp://"+g.Addr()+"/"+testHandle+"/live?nd_grant=ok.t1", "Authorization", "Basic "+b64("operator:guess"))
			switch pass {
			case "right":
				if resp.StatusCode != 200 {
					t.Fatalf("DESCRIBE %d", resp.StatusCode)
				}
			case "wrong":
				if resp.StatusCode != 401 || resp.Header.Has("WWW-Authenticate") || resp.Header.Get("X-Nanodems-Error") == "" {
					t.Fatalf("wrong stored login: %d %v", resp.StatusCode, resp.Header)
				}
			}
			for _, r := range cam.requests() {
				if strings.Contains(r.Header.Get("Authorization"), b64("operator:guess")) {
					t.Fatal("the client's own Authorization reached the camera")
				}
			}
		}
	})
}

// TestRecordingsNotShared: a description with an end (an NVR's playback)
// is each viewer's own.
func TestRecordingsNotShared(t *testing.T) {
	cam := startScriptCam(t, func(sc *scriptConn, req *Request) *Response {
		resp := quirkyAnswers(60, 200)(sc, req)
		if req.Method == "DESCRIBE" {
			resp.Body = []byte(strings.Replace(string(resp.Body), "a=range:npt=0-", "a=range:npt=0-3600", 1))
		}
		return resp
	})
	g, _ := scriptGateway(t, GNet, cam)
	for range 2 {
		rc := dialRaw(t, g.Addr())
		if resp := rc.do("DESCRIBE", "rtsp://"+g.Addr()+"/"+testHandle+"/playback?nd_grant=ok.t1"); resp.StatusCode != 200 {
			t.Fatalf("DESCRIBE %d", resp.StatusCode)
		}
	}
	cam.mu.Lock()
	n := len(cam.conns)
	cam.mu.Unlock()
	if n != 2 || strings.Count(cam.methods(), "DESCRIBE") != 2 {
		t.Fatalf("camera connections %d, methods %s: want one per viewer", n, cam.methods())
	}
}

// TestMulticastRefused and the gateway's own refusals.
func TestGatewayRefusals(t *testing.T) {
	modes(t, func(t *testing.T, mode ListenerMode) {
		cam := startScriptCam(t, quirkyAnswers(60, 200))
		g, b := scriptGateway(t, mode, cam, func(c *Config) { c.NoFanOut = true; c.IdleTimeout = time.Second })
		base := "rtsp://" + g.Addr() + "/" + testHandle
		rc := dialRaw(t, g.Addr())
		if r := rc.do("OPTIONS", "*"); r.StatusCode != 200 || r.Header.Get("Public") == "" {
			t.Fatalf("OPTIONS * %d", r.StatusCode)
		}
		for _, tc := range []struct {
			url    string
			status int
		}{
			{base + "/live", 401},
			{base + "/live?nd_grant=forged", 401},
			{base + "/live?nd_grant=ok.t2", 403},
			{"rtsp://" + g.Addr() + "/h-unknown/live?nd_grant=ok.t1", 404},
			{"rtsp://" + g.Addr() + "/", 404},
		} {
			if r := dialRaw(t, g.Addr()).do("DESCRIBE", tc.url); r.StatusCode != tc.status {
				t.Errorf("DESCRIBE %s: %d, want %d", tc.url, r.StatusCode, tc.status)
			}
		}
		// Three refused grants close the connection (after the answer).
		probe := dialRaw(t, g.Addr())
		for i := range 3 {
			if r := probe.do("DESCRIBE", base+"/live?nd_grant=bad"+strconv.Itoa(i)); r.StatusCode != 401 {
				t.Fatalf("refusal %d: %d", i, r.StatusCode)
			}
		}
		if _, err := probe.try("DESCRIBE", base+"/live?nd_grant=ok.t1"); err == nil {
			t.Fatal("a fourth try on a connection with three refused grants was answered")
		}
		rc.do("DESCRIBE", base+"/live?nd_grant=ok.t1")
		if r := rc.do("SETUP", base+"/live/trackID=1", "Transport", "RTP/AVP;multicast"); r.StatusCode != 461 {
			t.Fatalf("multicast SETUP %d, want 461", r.StatusCode)
		}
		// An offline agent.
		b.add("h-offline", fakeDevice{tenant: "t1", addr: cam.addr, offline: true})
		if r := dialRaw(t, g.Addr()).do("DESCRIBE", "rtsp://"+g.Addr()+"/h-offline/live?nd_grant=ok.t1"); r.StatusCode != 503 {
			t.Fatalf("offline agent: %d, want 503", r.StatusCode)
		}
		// A silent peer is cut off after the idle timeout.
		idle := dialRaw(t, g.Addr())
		idle.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := idle.c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Fatalf("idle unauthenticated connection: %v", err)
		}
		// A header that never ends is refused.
		big := dialRaw(t, g.Addr())
		big.c.Write([]byte("DESCRIBE " + base + " RTSP/1.0\r\nX: " + strings.Repeat("a", 20000)))
		big.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if it, err := big.rd.Next(); err != nil || it.Kind != KindResponse || it.Resp.StatusCode != 400 {
			t.Fatalf("oversized header: %+v %v", it, err)
		}
	})
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestHalfCloseTeardown: a client that sends TEARDOWN and half-closes
// (gnet closes at once on a FIN) still has its TEARDOWN forwarded.
func TestHalfCloseTeardown(t *testing.T) {
	modes(t, func(t *testing.T, mode ListenerMode) {
		cam := startScriptCam(t, quirkyAnswers(60, 200))
		g, _ := scriptGateway(t, mode, cam, func(c *Config) { c.NoFanOut = true })
		rc := dialRaw(t, g.Addr())
		base := "rtsp://" + g.Addr() + "/" + testHandle
		rc.do("DESCRIBE", base+"/live?nd_grant=ok.t1")
		rc.do("SETUP", base+"/live/trackID=1", "Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")
		rc.do("PLAY", base+"/live/", "Session", "SESS42")
		rc.c.Write([]byte("TEARDOWN " + base + "/live/ RTSP/1.0\r\nCSeq: 9\r\nSession: SESS42\r\n\r\n"))
		rc.c.(*net.TCPConn).CloseWrite()
		cam.waitMethod(t, "TEARDOWN", 1, 5*time.Second)
		time.Sleep(200 * time.Millisecond) // deliberate: room for a duplicate TEARDOWN to arrive, which must not
		if n := strings.Count(cam.methods(), "TEARDOWN"); n != 1 {
			t.Fatalf("camera got %d TEARDOWNs: %s", n, cam.methods())
		}
	})
}
