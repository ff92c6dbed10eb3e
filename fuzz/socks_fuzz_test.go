package fuzz

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/nanodems/connector/cli"
)

// FuzzSOCKSRequest feeds a SOCKS5 greeting and request to the proxy's
// parsers, as a client sends them in one write. Besides never panicking:
// neither reads past its message (the tunnel's first bytes stay in the
// reader), a request is at most 262 bytes, a one-byte-at-a-time reader
// gets the same answer, and an accepted request is a CONNECT to a port.
func FuzzSOCKSRequest(f *testing.F) {
	f.Add([]byte{5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 2, 0, 80})
	f.Add(append(append([]byte{5, 2, 0, 2, 5, 1, 0, 3, 9}, "127.0.0.2"...), 0x1f, 0x90, 'G', 'E', 'T'))
	f.Add(append([]byte{5, 1, 0, 5, 1, 0, 4}, make([]byte, 18)...))
	f.Add([]byte{5, 1, 2, 5, 2, 0, 1, 127, 0, 0, 2, 0, 80})
	f.Add([]byte{5, 0, 5, 1, 0, 3, 0, 0, 80})
	f.Add([]byte{5, 255})
	f.Add([]byte{4, 1, 0, 80, 127, 0, 0, 1, 0})
	f.Add([]byte{5, 1, 0, 5, 1, 0, 3, 255})
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		parse := func(r interface {
			Read([]byte) (int, error)
		}) ([]byte, cli.SOCKSRequest, error, error) {
			methods, gerr := cli.ReadSOCKSGreeting(r)
			if gerr != nil {
				return nil, cli.SOCKSRequest{}, gerr, nil
			}
			req, rerr := cli.ReadSOCKSRequest(r)
			return methods, req, nil, rerr
		}
		r := bytes.NewReader(data)
		methods, req, gerr, rerr := parse(r)
		if gerr != nil {
			if consumed := len(data) - r.Len(); consumed > 257 {
				t.Fatalf("greeting consumed %d bytes", consumed)
			}
		} else {
			if len(methods) != int(data[1]) {
				t.Fatalf("%d methods, greeting says %d", len(methods), data[1])
			}
			greeting := 2 + len(methods)
			if consumed := len(data) - r.Len() - greeting; consumed > 262 {
				t.Fatalf("request consumed %d bytes", consumed)
			}
		}
		m1, req1, gerr1, rerr1 := parse(iotest.OneByteReader(bytes.NewReader(data)))
		if !bytes.Equal(m1, methods) || req1 != req || (gerr1 == nil) != (gerr == nil) || (rerr1 == nil) != (rerr == nil) {
			t.Fatalf("one-byte reader disagrees: %v %+v %v %v / %v %+v %v %v", m1, req1, gerr1, rerr1, methods, req, gerr, rerr)
		}
		if gerr != nil || rerr != nil {
			var se *cli.SOCKSError
			if errors.As(rerr, &se) && (se.Reply == 0 || se.Reply > 8) {
				t.Fatalf("refusal with reply code %d", se.Reply)
			}
			return
		}
		if req.Command != cli.SOCKSCmdConnect || req.Port == 0 || req.Host == "" {
			t.Fatalf("accepted %+v", req)
		}
		greeting := 2 + len(methods)
		consumed := len(data) - r.Len() - greeting
		if want := 4 + 2 + hostLen(data[greeting+3], req.Host); consumed != want {
			t.Fatalf("request consumed %d bytes, it is %d", consumed, want)
		}
	})
}

func hostLen(atyp byte, host string) int {
	switch atyp {
	case 1:
		return 4
	case 4:
		return 16
	}
	return 1 + len(host)
}

// FuzzConnectRequest feeds HTTP CONNECT requests to the proxy's parser.
// Besides never panicking: it reads at most MaxConnectHeader bytes of the
// request (the bufio.Reader may have buffered more, which stays there for
// the tunnel), refusals carry a 4xx status, and an accepted request names a
// host and a port 1-65535 and was a CONNECT.
func FuzzConnectRequest(f *testing.F) {
	f.Add([]byte("CONNECT 127.0.0.2:443 HTTP/1.1\r\nHost: 127.0.0.2:443\r\n\r\n\x16\x03\x01"))
	f.Add([]byte("CONNECT [::1]:80 HTTP/1.0\n\n"))
	f.Add([]byte("CONNECT 127.0.0.2:80 HTTP/1.1\r\nProxy-Authorization: Basic eDp5\r\nUser-Agent: curl/8\r\n\r\n"))
	f.Add([]byte("GET http://127.0.0.2/ HTTP/1.1\r\nHost: 127.0.0.2\r\n\r\n"))
	f.Add([]byte("CONNECT 127.0.0.2 HTTP/1.1\r\n\r\n"))
	f.Add([]byte("CONNECT 127.0.0.2:0 HTTP/1.1\r\n\r\n"))
	f.Add([]byte("CONNECT :80 HTTP/1.1\r\n\r\n"))
	f.Add([]byte("CONNECT 127.0.0.2:80 HTTP/1.1\r\n" + strings.Repeat("X: y\r\n", 120) + "\r\n"))
	f.Add([]byte("CONNECT 127.0.0.2:80 HTTP/1.1\r\nX: " + strings.Repeat("y", 20000) + "\r\n\r\n"))
	f.Add([]byte("CONNECT 127.0.0.2:80 HTTP/1.1\r\n"))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		src := bytes.NewReader(data)
		br := bufio.NewReaderSize(src, 4096)
		req, err := cli.ReadConnectRequest(br)
		if consumed := len(data) - src.Len() - br.Buffered(); consumed > cli.MaxConnectHeader {
			t.Fatalf("consumed %d bytes of the request, at most %d", consumed, cli.MaxConnectHeader)
		}
		req1, err1 := cli.ReadConnectRequest(bufio.NewReaderSize(iotest.OneByteReader(bytes.NewReader(data)), 16))
		if req1 != req || (err1 == nil) != (err == nil) {
			t.Fatalf("small reader disagrees: %+v %v / %+v %v", req1, err1, req, err)
		}
		if err != nil {
			var ce *cli.ConnectError
			if errors.As(err, &ce) && (ce.Status < 400 || ce.Status > 499) {
				t.Fatalf("refusal with status %d", ce.Status)
			}
			return
		}
		if !bytes.HasPrefix(data, []byte("CONNECT ")) || req.Host == "" || req.Port == 0 {
			t.Fatalf("accepted %+v from %q", req, data)
		}
	})
}
