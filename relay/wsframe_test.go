package relay_test

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestWebSocketBadFramesClosePromptly: a client frame the protocol forbids
// or that claims more than the relay's message limit is answered at once
// with the close status that names the problem. An unmasked frame got 1011
// (the relay's "tunnel cut"); a header claiming 2^63-1 bytes got nothing
// until the client gave up, since the limit was only counted as payload
// bytes arrived.
func TestWebSocketBadFramesClosePromptly(t *testing.T) {
	d := startDemo(t)
	u, err := url.Parse(d.Info.RelayURL)
	must(t, err)
	masked := func(b0 byte, length uint64) []byte {
		f := []byte{b0}
		switch {
		case length < 126:
			f = append(f, 0x80|byte(length))
		case length < 1<<16:
			f = append(f, 0x80|126, byte(length>>8), byte(length))
		default:
			f = append(f, 0x80|127)
			f = binary.BigEndian.AppendUint64(f, length)
		}
		return append(f, 1, 2, 3, 4) // masking key; no payload follows
	}
	for _, tc := range []struct {
		name  string
		frame []byte
		code  int
	}{
		{"unmasked binary frame", []byte{0x82, 4, 'p', 'i', 'n', 'g'}, 1002},
		{"unmasked close frame", []byte{0x88, 2, 0x03, 0xe8}, 1002},
		{"length 2^63 (top bit set)", masked(0x82, 1<<63), 1002},
		{"length 2^63-1", masked(0x82, 1<<63-1), 1009},
		{"length 2^40", masked(0x82, 1<<40), 1009},
		{"length 1 MiB + 1", masked(0x82, 1<<20+1), 1009},
		{"continuation past the limit", append(masked(0x02, 0), masked(0x00, 1<<20+1)...), 1009},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, br := upgradeTunnel(t, u.Host, d.Info.EchoHandle, d.Info.Token)
			defer c.Close()
			start := time.Now()
			if _, err := c.Write(tc.frame); err != nil {
				t.Fatal(err)
			}
			code, reason, err := readClose(br)
			took := time.Since(start)
			if err != nil {
				t.Fatalf("after %v: %v", took, err)
			}
			t.Logf("close %d %q after %v", code, reason, took)
			if code != tc.code {
				t.Errorf("close status %d %q, want %d", code, reason, tc.code)
			}
			// Generous for a loaded 2-core machine; an unchecked length
			// leaves the client waiting until it gives up.
			if took > 2*time.Second {
				t.Errorf("close came after %v, want it at once", took)
			}
		})
	}
}

// upgradeTunnel opens /api/tunnel/{handle} by hand over TLS and returns the
// connection after the 101, with a reader of what the relay sends.
func upgradeTunnel(t *testing.T, addr, handle, token string) (*tls.Conn, *bufio.Reader) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	must(t, err)
	c.SetDeadline(time.Now().Add(15 * time.Second))
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	fmt.Fprintf(c, "GET /api/tunnel/%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n", handle, addr, key, token)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	must(t, err)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(resp.Body)
		c.Close()
		t.Fatalf("upgrade answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return c, br
}

// readClose reads server frames until a close frame and returns its
// status and reason.
func readClose(br *bufio.Reader) (int, string, error) {
	for {
		var hdr [2]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return 0, "", fmt.Errorf("no close frame: %w", err)
		}
		n := uint64(hdr[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(br, b[:]); err != nil {
				return 0, "", err
			}
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(br, b[:]); err != nil {
				return 0, "", err
			}
			n = binary.BigEndian.Uint64(b[:])
		}
		if n > 1<<20 {
			return 0, "", fmt.Errorf("server frame of %d bytes", n)
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(br, p); err != nil {
			return 0, "", err
		}
		if hdr[0]&0x0f != 8 {
			continue
		}
		if len(p) < 2 {
			return 1005, "", nil
		}
		return int(binary.BigEndian.Uint16(p)), string(p[2:]), nil
	}
}
