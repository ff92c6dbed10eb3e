package cli

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestDecodePlan(t *testing.T) {
	p, err := DecodePlan(strings.NewReader(`{"session_id":"cli_x","expires_at":"2026-01-02T03:04:05Z","refresh_seconds":60,"future_field":1,
		"entries":[{"ip":"127.0.0.2","port":80,"handle":"h-a","label":"Lobby\u001b[31m","device_id":"dev_a","site_id":"site_a"},
		{"ip":"127.1.0.0","port":554}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) != 2 || p.Entries[0].String() != "127.0.0.2:80" || p.Entries[1].String() != "127.1.0.0:554" || p.RefreshSeconds != 60 {
		t.Fatalf("plan %+v", p)
	}
	if p.Entries[0].Label != "Lobby?[31m" {
		t.Errorf("label %q: control characters must not reach the terminal", p.Entries[0].Label)
	}
	for _, bad := range []string{
		`{"entries":[{"ip":"127.0.0.1","port":80}]}`,       // the host's own address
		`{"entries":[{"ip":"0.0.0.0","port":80}]}`,         // every interface
		`{"entries":[{"ip":"192.168.1.10","port":80}]}`,    // the LAN
		`{"entries":[{"ip":"::1","port":80}]}`,             // not the relay's range
		`{"entries":[{"ip":"127.255.255.255","port":80}]}`, // broadcast
		`{"entries":[{"ip":"127.0.0.2","port":0}]}`,
		`{"entries":[{"ip":"127.0.0.2","port":70000}]}`,
		`{"entries":[{"ip":"127.0.0.2","port":80},{"ip":"127.0.0.2","port":80}]}`,
		`{"entries":[{"ip":"127.000.0.2","port":80}]}`,
		`{"entries":`,
		``,
	} {
		if _, err := DecodePlan(strings.NewReader(bad)); !errors.Is(err, ErrBadPlan) {
			t.Errorf("DecodePlan(%s) = %v, want ErrBadPlan", bad, err)
		}
	}
	huge := `{"session_id":"` + strings.Repeat("x", MaxPlanBytes) + `"}`
	if _, err := DecodePlan(strings.NewReader(huge)); !errors.Is(err, ErrBadPlan) || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized plan: %v", err)
	}
}

func TestReadSOCKSRequest(t *testing.T) {
	for _, tc := range []struct {
		in    []byte
		host  string
		port  uint16
		reply int // -1: a plain error, no reply
	}{
		{[]byte{5, 1, 0, 1, 127, 0, 0, 2, 0, 80}, "127.0.0.2", 80, 0},
		{append(append([]byte{5, 1, 0, 3, 9}, "127.0.0.3"...), 0x22, 0x2a), "127.0.0.3", 8746, 0},
		{[]byte{5, 2, 0, 1, 127, 0, 0, 2, 0, 80}, "", 0, SOCKSCmdNotSupported}, // BIND
		{[]byte{5, 1, 0, 9}, "", 0, SOCKSAtypNotSupported},
		{[]byte{5, 1, 0, 3, 0, 0, 80}, "", 0, SOCKSHostUnreachable},
		{[]byte{5, 1, 0, 1, 127, 0, 0, 2, 0, 0}, "", 0, SOCKSHostUnreachable},
		{[]byte{4, 1, 0, 1}, "", 0, -1},
		{[]byte{5, 1, 0, 3, 200, 'a'}, "", 0, -1},
	} {
		r := bytes.NewReader(append(tc.in, "tail"...))
		req, err := ReadSOCKSRequest(r)
		var se *SOCKSError
		switch {
		case tc.reply == 0:
			if err != nil || req.Host != tc.host || req.Port != tc.port {
				t.Errorf("%v: %+v %v", tc.in, req, err)
			} else if r.Len() != 4 {
				t.Errorf("%v: read past the request (%d bytes left)", tc.in, r.Len())
			}
		case tc.reply > 0:
			if !errors.As(err, &se) || int(se.Reply) != tc.reply {
				t.Errorf("%v: %v, want reply %d", tc.in, err, tc.reply)
			}
		default:
			if err == nil || errors.As(err, &se) {
				t.Errorf("%v: %v, want a plain error", tc.in, err)
			}
		}
	}
}

func TestReadConnectRequest(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("CONNECT 127.0.0.2:443 HTTP/1.1\r\nHost: 127.0.0.2:443\r\nProxy-Connection: keep-alive\r\n\r\nTLS"))
	req, err := ReadConnectRequest(br)
	if err != nil || req.Host != "127.0.0.2" || req.Port != 443 {
		t.Fatalf("%+v %v", req, err)
	}
	if rest, _ := br.Peek(3); string(rest) != "TLS" {
		t.Fatalf("after the request: %q, want the tunnel's first bytes", rest)
	}
	for _, tc := range []struct {
		in     string
		status int // 0: a plain error
	}{
		{"GET http://127.0.0.2/ HTTP/1.1\r\n\r\n", 405},
		{"CONNECT 127.0.0.2 HTTP/1.1\r\n\r\n", 400},
		{"CONNECT 127.0.0.2:0 HTTP/1.1\r\n\r\n", 400},
		{"CONNECT 127.0.0.2:99999 HTTP/1.1\r\n\r\n", 400},
		{"CONNECT 127.0.0.2:80 SPDY/3\r\n\r\n", 400},
		{"CONNECT\r\n\r\n", 400},
		{"CONNECT 127.0.0.2:80 HTTP/1.1\r\n" + strings.Repeat("X: y\r\n", 101) + "\r\n", 431},
		{"CONNECT 127.0.0.2:80 HTTP/1.1\r\nX: " + strings.Repeat("y", MaxConnectHeader) + "\r\n\r\n", 431},
		{"CONNECT 127.0.0.2:80 HTTP/1.1\r\nHost: x\r\n", 0}, // cut short
	} {
		_, err := ReadConnectRequest(bufio.NewReader(strings.NewReader(tc.in)))
		var ce *ConnectError
		if tc.status == 0 {
			if err == nil || errors.As(err, &ce) {
				t.Errorf("%.40q: %v, want a plain error", tc.in, err)
			}
			continue
		}
		if !errors.As(err, &ce) || ce.Status != tc.status {
			t.Errorf("%.40q: %v, want status %d", tc.in, err, tc.status)
		}
	}
}
