package fuzz

import (
	"bytes"
	"strings"
	"testing"

	"github.com/nanodems/connector/rtsp"
)

const rtspBase = "rtsp://relay.example.com:9554/h-RkN3Lzm9TgD8e2Bp7Q1xWA"

// FuzzRTSPRewriteSDP: after rewriting, no a=control names the camera (an
// absolute rtsp URL is the relay's), every other line is untouched, and
// a control changes exactly as the URL mapping says. The SDP reader never
// panics on it.
func FuzzRTSPRewriteSDP(f *testing.F) {
	for _, s := range []string{
		"v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\na=control:*\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:rtsp://10.0.0.5:554/ch1/trackID=1\r\n",
		"v=0\nm=audio 0 RTP/AVP 0\na=control:trackID=2\na=range:npt=0-3600\n",
		"a=control:RTSP://[fe80::1]:554/x\r\na=control:rtsps://cam/y?z=1\na=control:",
		"m=video 0 RTP/AVP 96 97 300\na=rtpmap:97 H265/90000\na=sendonly\n",
	} {
		f.Add([]byte(s))
	}
	fn := func(u string) string { return rtsp.ToRelay(u, rtspBase) }
	f.Fuzz(func(t *testing.T, body []byte) {
		out := rtsp.RewriteSDP(body, fn)
		inLines, outLines := bytes.Split(body, []byte("\n")), bytes.Split(out, []byte("\n"))
		if len(inLines) != len(outLines) {
			t.Fatalf("%d lines became %d", len(inLines), len(outLines))
		}
		for i := range inLines {
			in, o := string(inLines[i]), string(outLines[i])
			if !strings.HasPrefix(in, "a=control:") {
				if in != o {
					t.Fatalf("line %q became %q", in, o)
				}
				continue
			}
			v := strings.TrimRight(strings.TrimPrefix(o, "a=control:"), "\r")
			if want := fn(strings.TrimRight(strings.TrimPrefix(in, "a=control:"), "\r")); v != want {
				t.Fatalf("control %q became %q, want %q", in, v, want)
			}
			scheme, _, ok := strings.Cut(v, "://")
			if s := strings.ToLower(scheme); ok && (s == "rtsp" || s == "rtsps" || s == "rtspu") && !strings.HasPrefix(v, rtspBase) {
				t.Fatalf("control %q still names the camera", v)
			}
		}
		rtsp.ParseSDP(body).IsLive()
	})
}

// FuzzRTSPCameraURL: whatever a client puts in a request line, the URL
// the camera gets carries no grant, names the camera's address, and
// keeps the client's path and the camera's own query.
func FuzzRTSPCameraURL(f *testing.F) {
	for _, s := range []string{
		rtspBase + "/Streaming/Channels/101?nd_grant=AB.cd",
		rtspBase + "/cam/realmonitor?channel=1&subtype=0&nd_grant=AB.cd",
		rtspBase + "/live?nd_grant=AB.cd/trackID=1",
		rtspBase + "?nd_grant=A&nd_grant=B&nd_grant=C&nd_grant=D&nd_grant=E",
		"rtsp://u:p@relay/h-x/a?x=nd_grant=1&nd_grant=2",
		"rtsp://relay/h-x/a?nd_grant=%2e%2e",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, u string) {
		h, cam, _, err := rtsp.CameraURL(u, "10.0.0.5:554")
		if err != nil {
			return
		}
		if h == "" || strings.ContainsAny(h, "/?") {
			t.Fatalf("handle %q of %q", h, u)
		}
		if !strings.HasPrefix(cam, "rtsp://10.0.0.5:554") {
			t.Fatalf("camera URL %q", cam)
		}
		for _, sep := range []string{"?nd_grant=", "&nd_grant="} {
			if strings.Contains(cam, sep) {
				t.Fatalf("a grant parameter reaches the camera: %q → %q", u, cam)
			}
		}
	})
}
