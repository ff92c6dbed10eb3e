package fuzz

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/nanodems/connector/rtsp"
)

// Fuzz targets of the RTSP gateway's parsers: every byte a
// client or a camera sends goes through them.

var rtspSeeds = []string{
	"OPTIONS rtsp://relay:9554/h-RkN3Lzm9TgD8e2Bp7Q1xWA/x?nd_grant=a.b RTSP/1.0\r\nCSeq: 1\r\n\r\n",
	"DESCRIBE rtsp://cam/x RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\nX: a\r\n  folded\r\n\r\n",
	"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n",
	"RTSP/1.0 200\nCSeq: 3\n\n",
	"ANNOUNCE rtsp://a RTSP/1.0\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
	"SETUP rtsp://a RTSP/1.0\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
	"GET / HTTP/1.1\r\n\r\n",
	"\r\n\r\n$\x00\x00\x03abc$\x01\xff\xff",
}

// FuzzRTSPParseMessage: the message parser never panics, never reads past
// its input or its bounds, and what it parses survives a round trip
// through the writer.
func FuzzRTSPParseMessage(f *testing.F) {
	for _, s := range rtspSeeds {
		f.Add([]byte(s))
	}
	lim := rtsp.Limits{MaxHeaderBytes: 2048, MaxBody: 4096}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, resp, n, err := rtsp.ParseMessage(b, lim)
		if err != nil {
			if n != 0 || req != nil || resp != nil {
				t.Fatalf("error %v with n=%d", err, n)
			}
			var pe *rtsp.ParseError
			if !errors.Is(err, rtsp.ErrIncomplete) && (!errors.As(err, &pe) || pe.Status < 400) {
				t.Fatalf("error %v is neither incomplete nor a status", err)
			}
			return
		}
		if n > len(b) || (req == nil) == (resp == nil) {
			t.Fatalf("n=%d of %d, req %v resp %v", n, len(b), req, resp)
		}
		var wire []byte
		var header rtsp.Header
		var body []byte
		if req != nil {
			if strings.ContainsAny(req.Method+req.URL, " \r\n") {
				t.Fatalf("request line parts with separators: %q %q", req.Method, req.URL)
			}
			if len(req.Body) > lim.MaxBody {
				t.Fatalf("body of %d bytes", len(req.Body))
			}
			wire, header, body = req.AppendTo(nil), req.Header, req.Body
		} else {
			wire, header, body = resp.AppendTo(nil), resp.Header, resp.Body
		}
		req2, resp2, n2, err := rtsp.ParseMessage(wire, rtsp.Limits{MaxHeaderBytes: 1 << 20, MaxBody: 1 << 20})
		if err != nil || n2 != len(wire) {
			t.Fatalf("re-parse of %q: %v (n=%d of %d)", wire, err, n2, len(wire))
		}
		h2, b2 := rtspHeaderBody(req2, resp2)
		if !bytes.Equal(body, b2) {
			t.Fatalf("body %q became %q", body, b2)
		}
		for _, fl := range header {
			if strings.EqualFold(fl.Name, "Content-Length") {
				continue
			}
			if h2.Get(fl.Name) == "" && fl.Value != "" && header.Get(fl.Name) == fl.Value {
				t.Fatalf("header %s lost in %q", fl.Name, wire)
			}
		}
	})
}

func rtspHeaderBody(req *rtsp.Request, resp *rtsp.Response) (rtsp.Header, []byte) {
	if req != nil {
		return req.Header, req.Body
	}
	return resp.Header, resp.Body
}

// FuzzRTSPInterleavedReader: the stream reader (frames and messages, as
// a camera connection carries them) gives the same items however the
// bytes are split, never more bytes than came in, and frames whose length
// matches their header.
func FuzzRTSPInterleavedReader(f *testing.F) {
	for _, s := range rtspSeeds {
		f.Add([]byte(s), true)
	}
	f.Add([]byte("$\x00\x00\x02ab$\x01\x00\x00RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n\x00\xffRTSP/1.0 404 x\r\n\r\n"), true)
	lim := rtsp.Limits{MaxHeaderBytes: 1024, MaxBody: 2048}
	f.Fuzz(func(t *testing.T, b []byte, lenient bool) {
		read := func(r io.Reader) []string {
			rd := rtsp.NewReader(r, 16, lim)
			rd.Lenient = lenient
			var out []string
			total := 0
			for {
				it, err := rd.Next()
				if err != nil {
					return append(out, "end")
				}
				switch it.Kind {
				case rtsp.KindFrame:
					if len(it.Frame) < rtsp.FrameHeaderLen || int(it.Frame[2])<<8|int(it.Frame[3]) != len(it.Payload()) || it.Frame[0] != '$' {
						t.Fatalf("frame %x", it.Frame)
					}
					total += len(it.Frame)
					out = append(out, "frame "+string(it.Frame))
				case rtsp.KindRequest:
					out = append(out, "req "+it.Req.Method+" "+it.Req.URL+" "+string(it.Req.Body))
				case rtsp.KindResponse:
					out = append(out, "resp "+it.Resp.Reason+" "+string(it.Resp.Body))
				default:
					t.Fatalf("item of kind %d", it.Kind)
				}
				if total > len(b) {
					t.Fatalf("frames total %d bytes of %d read", total, len(b))
				}
			}
		}
		whole := read(bytes.NewReader(b))
		bytewise := read(iotest.OneByteReader(bytes.NewReader(b)))
		if strings.Join(whole, "\x00") != strings.Join(bytewise, "\x00") {
			t.Fatalf("split changes the items:\n%q\n%q", whole, bytewise)
		}
	})
}
