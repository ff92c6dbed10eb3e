package rtsp

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseMessage(t *testing.T) {
	in := "DESCRIBE rtsp://cam/x RTSP/1.0\r\nCSeq: 2\r\nAccept:application/sdp\r\nX-Fold: a\r\n  b\r\n\r\n"
	req, resp, n, err := ParseMessage([]byte(in+"junk"), Limits{})
	if err != nil || resp != nil || n != len(in) {
		t.Fatalf("req %v resp %v n %d err %v", req, resp, n, err)
	}
	if req.Method != "DESCRIBE" || req.URL != "rtsp://cam/x" || req.CSeq() != "2" || req.Header.Get("accept") != "application/sdp" || req.Header.Get("X-Fold") != "a b" {
		t.Fatalf("%+v", req)
	}
	// Bare LF, no reason phrase, a body.
	in = "RTSP/1.0 200\nCSeq: 3\nContent-Length: 4\n\nv=0\n"
	_, resp, n, err = ParseMessage([]byte(in), Limits{})
	if err != nil || resp.StatusCode != 200 || string(resp.Body) != "v=0\n" || n != len(in) {
		t.Fatalf("resp %+v n %d err %v", resp, n, err)
	}
	// Incomplete until the last byte.
	full := []byte("OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 2\r\n\r\nab")
	for i := 0; i < len(full); i++ {
		if _, _, _, err := ParseMessage(full[:i], Limits{}); !errors.Is(err, ErrIncomplete) {
			t.Fatalf("prefix of %d bytes: %v, want ErrIncomplete", i, err)
		}
	}
}

func TestParseMessageRefusals(t *testing.T) {
	for _, tc := range []struct {
		in     string
		status int
	}{
		{"DESCRIBE rtsp://x RTSP/1.0\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
		{"DESCRIBE rtsp://x RTSP/1.0\r\nContent-Length: -1\r\n\r\n", 400},
		{"DESCRIBE rtsp://x RTSP/1.0\r\nContent-Length: 999999999\r\n\r\n", 413},
		{"DESCRIBE rtsp://x HTTP/1.1\r\n\r\n", 505},
		{"DESCRIBE rtsp://x\r\n\r\n", 400},
		{"DESCRIBE rtsp://x RTSP/1.0\r\nno colon\r\n\r\n", 400},
		{"DESCRIBE rtsp://x RTSP/1.0\r\n a: fold first\r\n\r\n", 400},
		{"RTSP/1.0 2000 OK\r\n\r\n", 400},
		{"DESCRIBE rtsp://x RTSP/1.0\r\n" + strings.Repeat("X-A: b\r\n", 200) + "\r\n", 400},
	} {
		_, _, _, err := ParseMessage([]byte(tc.in), Limits{})
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Status != tc.status {
			t.Errorf("%q: %v, want status %d", tc.in[:min(len(tc.in), 50)], err, tc.status)
		}
	}
	// The header bound holds for a header that never ends.
	big := "DESCRIBE rtsp://x RTSP/1.0\r\nX: " + strings.Repeat("a", 2000)
	if _, _, _, err := ParseMessage([]byte(big), Limits{MaxHeaderBytes: 1024}); err == nil || errors.Is(err, ErrIncomplete) {
		t.Fatalf("unbounded header: %v", err)
	}
}

func TestMessageRoundTrip(t *testing.T) {
	req := &Request{Method: "ANNOUNCE", URL: "rtsp://a/b", Header: Header{{"CSeq", "1"}, {"Content-Length", "999"}, {"content-type", "application/sdp"}}, Body: []byte("v=0\r\n")}
	b := req.AppendTo(nil)
	got, _, n, err := ParseMessage(b, Limits{})
	if err != nil || n != len(b) || string(got.Body) != "v=0\r\n" || got.Header.Get("Content-Length") != "5" || got.Proto != "RTSP/1.0" {
		t.Fatalf("%q → %+v %v", b, got, err)
	}
	h := Header{{"A", "1"}, {"b", "2"}, {"a", "3"}}
	h.Set("a", "x")
	if len(h) != 2 || h[0].Value != "x" || h.Get("B") != "2" {
		t.Fatalf("Set: %v", h)
	}
	h.Del("B")
	if len(h) != 1 {
		t.Fatalf("Del: %v", h)
	}
}

func TestReader(t *testing.T) {
	var stream bytes.Buffer
	stream.WriteString("\r\nRTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 3\r\n\r\nabc")
	stream.Write([]byte{'$', 0, 0, 3, 1, 2, 3})
	stream.Write([]byte{'$', 1, 0xff, 0xff})
	stream.Write(bytes.Repeat([]byte{7}, 65535))
	stream.WriteString("SET_PARAMETER rtsp://a RTSP/1.0\r\nCSeq: 9\r\n\r\n")
	// One byte at a time: every boundary splits somewhere.
	rd := NewReader(iotest.OneByteReader(bytes.NewReader(stream.Bytes())), 16, Limits{})
	it, err := rd.Next()
	if err != nil || it.Kind != KindResponse || string(it.Resp.Body) != "abc" {
		t.Fatalf("%+v %v", it, err)
	}
	it, err = rd.Next()
	if err != nil || it.Kind != KindFrame || it.Channel != 0 || !bytes.Equal(it.Payload(), []byte{1, 2, 3}) {
		t.Fatalf("%+v %v", it, err)
	}
	it, err = rd.Next()
	if err != nil || it.Kind != KindFrame || it.Channel != 1 || len(it.Payload()) != 65535 {
		t.Fatalf("frame of 65535: %v %v", len(it.Frame), err)
	}
	it, err = rd.Next()
	if err != nil || it.Kind != KindRequest || it.Req.Method != "SET_PARAMETER" {
		t.Fatalf("%+v %v", it, err)
	}
	if _, err := rd.Next(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
	// Strict readers refuse garbage; lenient ones (camera side) skip it.
	garbage := append([]byte{0, 0xff, '!'}, []byte("RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n")...)
	if _, err := NewReader(bytes.NewReader(garbage), 64, Limits{}).Next(); !errors.Is(err, ErrGarbage) {
		t.Fatalf("strict: %v", err)
	}
	lr := NewReader(bytes.NewReader(garbage), 64, Limits{})
	lr.Lenient = true
	if it, err := lr.Next(); err != nil || it.Kind != KindResponse {
		t.Fatalf("lenient: %+v %v", it, err)
	}
}

func TestTransport(t *testing.T) {
	ts, err := ParseTransports(`RTP/AVP;unicast;client_port=5000-5001;mode="PLAY", RTP/AVP/TCP;unicast;interleaved=4-5`)
	if err != nil || len(ts) != 2 {
		t.Fatalf("%v %v", ts, err)
	}
	if ts[0].IsTCP() || ts[0].Lower() != "UDP" || !ts[1].IsTCP() {
		t.Fatalf("lower transports: %v", ts)
	}
	if a, b, ok := ts[0].Ports("client_port"); !ok || a != 5000 || b != 5001 {
		t.Fatalf("client_port %d-%d %v", a, b, ok)
	}
	if a, b, ok := ts[1].Ports("interleaved"); !ok || a != 4 || b != 5 {
		t.Fatalf("interleaved %d-%d %v", a, b, ok)
	}
	if got := ts[0].String(); got != `RTP/AVP;unicast;client_port=5000-5001;mode="PLAY"` {
		t.Fatalf("round trip: %s", got)
	}
	if a, b, ok := (Transport{Params: []Param{{Name: "interleaved", Value: "6", HasValue: true}}}).Ports("interleaved"); !ok || a != 6 || b != 7 {
		t.Fatalf("single channel: %d %d", a, b)
	}
	if _, err := ParseTransports(" , "); err == nil {
		t.Fatal("empty transport accepted")
	}
	s, ok := ParseSession("12345678;timeout=6")
	if !ok || s.ID != "12345678" || s.Timeout != 6 {
		t.Fatalf("%+v", s)
	}
	if s, _ := ParseSession("abc"); s.TimeoutOrDefault() != 60 {
		t.Fatalf("default timeout %d", s.TimeoutOrDefault())
	}
}

func TestRewriteRTPInfo(t *testing.T) {
	in := "url=rtsp://10.0.0.5:554/cam/realmonitor?channel=1&subtype=0/trackID=0;seq=1;rtptime=2, url=trackID=1;seq=3,url=\"rtsp://10.0.0.5/a,b\";seq=4"
	got := RewriteRTPInfo(in, func(u string) string { return ToRelay(u, "rtsp://relay:9554/h-x") })
	want := "url=rtsp://relay:9554/h-x/cam/realmonitor?channel=1&subtype=0/trackID=0;seq=1;rtptime=2, url=trackID=1;seq=3,url=\"rtsp://relay:9554/h-x/a,b\";seq=4"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestRewriteSDP(t *testing.T) {
	in := "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\na=control:*\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:rtsp://10.0.0.5:554/ch1/trackID=1\r\nm=audio 0 RTP/AVP 0\r\na=control:trackID=2\r\n"
	out := RewriteSDP([]byte(in), func(u string) string { return ToRelay(u, "rtsp://relay/h-x") })
	want := strings.Replace(in, "rtsp://10.0.0.5:554/ch1", "rtsp://relay/h-x/ch1", 1)
	if string(out) != want {
		t.Fatalf("got %q", out)
	}
	same := []byte("v=0\nm=video 0 RTP/AVP 96\na=control:trackID=1\n")
	if got := RewriteSDP(same, func(u string) string { return ToRelay(u, "rtsp://relay/h-x") }); &got[0] != &same[0] {
		t.Fatal("a body without absolute controls was copied")
	}
	sdp := ParseSDP([]byte(in))
	if len(sdp.Media) != 2 || sdp.Media[0].Codecs[96] != "H264" || sdp.Media[1].Codecs[0] != "PCMU" || sdp.Media[0].Proto != "RTP/AVP" || sdp.Control != "*" {
		t.Fatalf("%+v", sdp)
	}
	for r, live := range map[string]bool{"": true, "npt=0-": true, "npt=now-": true, "npt=0.000-": true, "npt=0-3600": false, "clock=20260101T000000Z-": false} {
		if got := (SDP{Range: r}).IsLive(); got != live {
			t.Errorf("range %q live %v, want %v", r, got, live)
		}
	}
}

func TestRelayURLs(t *testing.T) {
	for _, tc := range []struct{ in, handle, rest, grant, camera string }{
		{"rtsp://relay:9554/h-x/Streaming/Channels/101?nd_grant=AB.cd", "h-x", "/Streaming/Channels/101", "AB.cd", "rtsp://10.0.0.5:554/Streaming/Channels/101"},
		{"rtsp://relay:9554/h-x/Streaming/Channels/101/?nd_grant=AB.cd", "h-x", "/Streaming/Channels/101/", "AB.cd", "rtsp://10.0.0.5:554/Streaming/Channels/101/"},
		{"rtsp://relay/h-x/cam/realmonitor?channel=1&subtype=0&nd_grant=AB.cd", "h-x", "/cam/realmonitor?channel=1&subtype=0", "AB.cd", "rtsp://10.0.0.5:554/cam/realmonitor?channel=1&subtype=0"},
		{"rtsp://relay/h-x/cam?nd_grant=AB.cd&channel=1", "h-x", "/cam?channel=1", "AB.cd", "rtsp://10.0.0.5:554/cam?channel=1"},
		{"rtsp://relay/h-x/live?nd_grant=AB.cd/trackID=1", "h-x", "/live/trackID=1", "AB.cd", "rtsp://10.0.0.5:554/live/trackID=1"},
		{"rtsp://user:pw@relay/h-x", "h-x", "", "", "rtsp://10.0.0.5:554"},
		{"rtsp://relay/h-x/", "h-x", "/", "", "rtsp://10.0.0.5:554/"},
		{"RTSP://relay/h-x?nd_grant=Z", "h-x", "", "Z", "rtsp://10.0.0.5:554"},
	} {
		u, err := parseRelayURL(tc.in)
		if err != nil || u.Handle != tc.handle || u.Rest != tc.rest || u.Grant != tc.grant || u.Camera("10.0.0.5:554") != tc.camera {
			t.Errorf("%s → %+v %v (camera %s)", tc.in, u, err, u.Camera("10.0.0.5:554"))
		}
		if strings.Contains(u.Base(), "@") {
			t.Errorf("%s: base %s keeps userinfo", tc.in, u.Base())
		}
	}
	for _, bad := range []string{"*", "http://relay/h-x", "rtsp://relay", "rtsp:///h-x", "rtsp://relay/"} {
		if _, err := parseRelayURL(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	for in, want := range map[string]string{
		"rtsp://10.0.0.5:554/a/b": "rtsp://relay/h-x/a/b",
		"rtsp://cam":              "rtsp://relay/h-x",
		"rtsp://[fe80::1]:554/a":  "rtsp://relay/h-x/a",
		"rtsp://cam?x=1":          "rtsp://relay/h-x?x=1",
		"trackID=1":               "trackID=1",
		"*":                       "*",
		"http://cam/a":            "http://cam/a",
	} {
		if got := ToRelay(in, "rtsp://relay/h-x"); got != want {
			t.Errorf("ToRelay(%s) = %s, want %s", in, got, want)
		}
	}
	for _, tc := range [][3]string{
		{"rtsp://cam/a/", "trackID=1", "rtsp://cam/a/trackID=1"},
		{"rtsp://cam/a", "trackID=1", "rtsp://cam/a/trackID=1"},
		{"rtsp://cam/a?x=1/", "trackID=0", "rtsp://cam/a?x=1/trackID=0"},
		{"rtsp://cam/a", "rtsp://other/b", "rtsp://other/b"},
		{"rtsp://cam:554/a/b", "/c", "rtsp://cam:554/c"},
		{"rtsp://cam/a", "*", "rtsp://cam/a"},
	} {
		if got := resolveControl(tc[0], tc[1]); got != tc[2] {
			t.Errorf("resolveControl(%s, %s) = %s, want %s", tc[0], tc[1], got, tc[2])
		}
	}
}

func TestKeyframes(t *testing.T) {
	rtpHdr := []byte{0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1}
	pkt := func(payload ...byte) []byte { return append(append([]byte(nil), rtpHdr...), payload...) }
	for _, tc := range []struct {
		name  string
		codec string
		p     []byte
		key   bool
	}{
		{"h264 SPS", "H264", pkt(0x67, 1), true},
		{"h264 IDR", "H264", pkt(0x65, 1), true},
		{"h264 P", "H264", pkt(0x41, 1), false},
		{"h264 STAP-A with SPS", "H264", pkt(0x18, 0, 2, 0x67, 1, 0, 2, 0x68, 1), true},
		{"h264 STAP-A without", "H264", pkt(0x18, 0, 2, 0x06, 1), false},
		{"h264 FU-A IDR start", "H264", pkt(0x7c, 0x85, 1), true},
		{"h264 FU-A IDR middle", "H264", pkt(0x7c, 0x05, 1), false},
		{"h265 IDR", "H265", pkt(19<<1, 1, 1), true},
		{"h265 TRAIL", "H265", pkt(1<<1, 1, 1), false},
		{"h265 FU CRA start", "H265", pkt(49<<1, 1, 0x80|21, 1), true},
		{"jpeg start", "JPEG", pkt(0, 0, 0, 0, 1, 64, 48, 40), true},
		{"jpeg middle", "JPEG", pkt(0, 0, 4, 0, 1, 64, 48, 40), false},
		{"audio", "PCMU", pkt(1, 2, 3), true},
	} {
		pt, payload, ok := rtpPayload(tc.p)
		if !ok || pt != 96 {
			t.Fatalf("%s: rtpPayload %v", tc.name, ok)
		}
		if got := startsKeyframe(tc.codec, payload); got != tc.key {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.key)
		}
	}
	// CSRC and header extension are skipped.
	ext := []byte{0x91, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0xbe, 0xde, 0, 1, 1, 2, 3, 4, 0x65}
	if _, payload, ok := rtpPayload(ext); !ok || !startsKeyframe("H264", payload) {
		t.Fatalf("extension: %v %x", ok, payload)
	}
}

func TestHTTPTunnelParsing(t *testing.T) {
	get := "GET /h-x/live HTTP/1.0\r\nx-sessioncookie: abc123\r\nAccept: application/x-rtsp-tunnelled\r\n\r\n"
	hh, n, err := ParseTunnelHalf([]byte(get))
	if err != nil || hh.Post || hh.Cookie != "abc123" || n != len(get) {
		t.Fatalf("%+v %d %v", hh, n, err)
	}
	post := "POST /h-x/live HTTP/1.1\r\nX-Sessioncookie: abc123\r\nContent-Type: application/x-rtsp-tunnelled\r\nContent-Length: 32767\r\n\r\nT1BUSU9OUw=="
	hh, n, err = ParseTunnelHalf([]byte(post))
	if err != nil || !hh.Post || post[n:] != "T1BUSU9OUw==" {
		t.Fatalf("%+v %d %v", hh, n, err)
	}
	if _, _, err := ParseTunnelHalf([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err == nil {
		t.Fatal("a browser GET passed as a tunnel")
	}
	if sniffHTTP([]byte("PO")) != needMore || sniffHTTP([]byte("POST ")) != httpTunnel || sniffHTTP([]byte("OPTIONS")) != notHTTP {
		t.Fatal("sniff")
	}
	// Each message encoded on its own (padding mid-stream), split anywhere.
	msgs := []string{"OPTIONS rtsp://a/h-x RTSP/1.0\r\nCSeq: 1\r\n\r\n", "DESCRIBE rtsp://a/h-x RTSP/1.0\r\nCSeq: 2\r\n\r\n"}
	var enc string
	for _, m := range msgs {
		enc += b64(m) + "\r\n"
	}
	for split := 1; split < len(enc); split++ {
		var d Base64Stream
		out, err := d.Decode(nil, []byte(enc[:split]))
		if err == nil {
			out, err = d.Decode(out, []byte(enc[split:]))
		}
		if err != nil || string(out) != msgs[0]+msgs[1] {
			t.Fatalf("split %d: %q %v", split, out, err)
		}
	}
	var d Base64Stream
	if _, err := d.Decode(nil, []byte("ab=c")); err == nil {
		t.Fatal("bad padding accepted")
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
