package relay_test

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestWebSocketBytesBehindUpgrade: a client that sends its first frame in
// the same write as the upgrade request (so it arrives buffered behind
// the request) has it delivered: the small hijack buffers (relay/hijack.go)
// keep what net/http had already read.
func TestWebSocketBytesBehindUpgrade(t *testing.T) {
	d := startDemo(t)
	u, err := url.Parse(d.Info.RelayURL)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", u.Host, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	req := fmt.Sprintf("GET /api/tunnel/%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n", d.Info.EchoHandle, u.Host, key, d.Info.Token)
	// A masked binary frame carrying "ping", in the same write.
	mask := [4]byte{1, 2, 3, 4}
	frame := []byte{0x82, 0x80 | 4, mask[0], mask[1], mask[2], mask[3]}
	for i, b := range []byte("ping") {
		frame = append(frame, b^mask[i%4])
	}
	if _, err := c.Write(append([]byte(req), frame...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("upgrade answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	// The echo comes back as one or more binary frames from the server.
	var got []byte
	for len(got) < 4 {
		var hdr [2]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			t.Fatalf("reading the echo: %v (got %q)", err, got)
		}
		if hdr[0]&0x0f != 2 || hdr[1]&0x80 != 0 || hdr[1]&0x7f > 125 {
			t.Fatalf("unexpected frame header % x", hdr)
		}
		p := make([]byte, hdr[1]&0x7f)
		if _, err := io.ReadFull(br, p); err != nil {
			t.Fatal(err)
		}
		got = append(got, p...)
	}
	if string(got) != "ping" {
		t.Fatalf("echo %q, want \"ping\"", got)
	}
}
