package fuzz

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/nanodems/connector/rtsp"
)

// FuzzRTSPTunnelHalf: the HTTP header of an RTSP-over-HTTP half (GET or
// POST tied by x-sessioncookie) parses or is refused with a status, and a
// parsed half has a cookie that is safe to use as a pairing key.
func FuzzRTSPTunnelHalf(f *testing.F) {
	for _, s := range []string{
		"GET /h-x/live HTTP/1.0\r\nx-sessioncookie: abc\r\nAccept: application/x-rtsp-tunnelled\r\n\r\n",
		"POST /h-x/live HTTP/1.1\r\nX-SessionCookie: abc\r\nContent-Type: application/x-rtsp-tunnelled\r\nContent-Length: 32767\r\n\r\nT1BU",
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/2\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		hh, n, err := rtsp.ParseTunnelHalf(b)
		if err != nil {
			var pe *rtsp.ParseError
			if !errors.Is(err, rtsp.ErrIncomplete) && !errors.As(err, &pe) {
				t.Fatalf("error %v", err)
			}
			return
		}
		if n > len(b) || hh.Cookie == "" || len(hh.Cookie) > 128 || strings.ContainsAny(hh.Cookie, " \r\n\x00") {
			t.Fatalf("half %+v n=%d", hh, n)
		}
	})
}

// FuzzRTSPTunnelBody: the POST body decoder gives the messages back
// however the client encoded them (each on its own, padded) and however
// the network split the base64, and refuses what is not base64.
func FuzzRTSPTunnelBody(f *testing.F) {
	f.Add([]byte("OPTIONS rtsp://a/h-x RTSP/1.0\r\nCSeq: 1\r\n\r\n"), []byte("DESCRIBE rtsp://a/h-x RTSP/1.0\r\n\r\n"), uint16(7), []byte("T1BUSU9OUw==\r\n"))
	f.Add([]byte{0, 1, 2}, []byte{}, uint16(1), []byte("ab=c"))
	f.Fuzz(func(t *testing.T, m1, m2 []byte, split uint16, raw []byte) {
		enc := base64.StdEncoding.EncodeToString(m1) + "\r\n" + base64.StdEncoding.EncodeToString(m2)
		k := int(split) % (len(enc) + 1)
		var d rtsp.Base64Stream
		out, err := d.Decode(nil, []byte(enc[:k]))
		if err == nil {
			out, err = d.Decode(out, []byte(enc[k:]))
		}
		if err != nil || !bytes.Equal(out, append(append([]byte(nil), m1...), m2...)) {
			t.Fatalf("decoded %q, %v; want %q%q", out, err, m1, m2)
		}
		var r rtsp.Base64Stream
		got, err := r.Decode(nil, raw)
		if err == nil && len(got) > len(raw) {
			t.Fatalf("%d bytes from %d characters", len(got), len(raw))
		}
	})
}
