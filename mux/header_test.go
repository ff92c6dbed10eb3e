package mux_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/nanodems/connector/mux"
)

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []mux.Header{
		{Host: "10.0.0.7", Port: 554},
		{Host: "cam-1.site.lan", Port: 80, Flags: mux.FlagDedicated},
		{Host: "192.168.1.64", Port: 554, Flags: mux.FlagUDP},
		{Host: "cam-2", Port: 554, Flags: mux.FlagUDP | mux.FlagDedicated},
		{Host: "[fe80::1%eth0]", Port: 1},
		{Host: strings.Repeat("a", mux.MaxHostLen), Port: 65535, Flags: 0xff},
	} {
		var w countingWriter
		if err := mux.WriteHeader(&w, h); err != nil {
			t.Fatalf("WriteHeader(%+v): %v", h, err)
		}
		if w.writes != 1 {
			t.Errorf("WriteHeader(%+v) made %d writes, want 1", h, w.writes)
		}
		want, _ := mux.AppendHeader([]byte("prefix"), h)
		if !bytes.Equal(want[len("prefix"):], w.Bytes()) {
			t.Errorf("AppendHeader and WriteHeader disagree: %x vs %x", want, w.Bytes())
		}
		w.WriteString("payload")
		got, err := mux.ReadHeader(&w)
		if err != nil || got != h {
			t.Fatalf("ReadHeader = %+v, %v; want %+v", got, err, h)
		}
		if rest := w.String(); rest != "payload" {
			t.Errorf("ReadHeader left %q, want the payload", rest)
		}
	}
}

func TestHeaderInvalid(t *testing.T) {
	for name, h := range map[string]mux.Header{
		"empty host":   {Port: 80},
		"port 0":       {Host: "cam"},
		"long host":    {Host: strings.Repeat("a", mux.MaxHostLen+1), Port: 80},
		"space":        {Host: "cam 1", Port: 80},
		"control byte": {Host: "cam\n", Port: 80},
		"DEL":          {Host: "cam\x7f", Port: 80},
		"non-ASCII":    {Host: "kamera-ü", Port: 80},
	} {
		b, err := mux.AppendHeader([]byte("x"), h)
		if !errors.Is(err, mux.ErrBadHeader) || string(b) != "x" {
			t.Errorf("%s: AppendHeader = %q, %v; want b unchanged and ErrBadHeader", name, b, err)
		}
		var w bytes.Buffer
		if err := mux.WriteHeader(&w, h); !errors.Is(err, mux.ErrBadHeader) || w.Len() != 0 {
			t.Errorf("%s: WriteHeader wrote %d bytes, %v", name, w.Len(), err)
		}
	}
}

func TestReadHeaderErrors(t *testing.T) {
	for name, in := range map[string]string{
		"empty":          "",
		"short fixed":    "\x01\x00\x00",
		"version 0":      "\x00\x00\x00\x50\x03cam",
		"version 2":      "\x02\x00\x00\x50\x03cam",
		"truncated host": "\x01\x00\x00\x50\x05cam",
		"empty host":     "\x01\x00\x00\x50\x00",
		"port 0":         "\x01\x00\x00\x00\x03cam",
		"host of 254":    "\x01\x00\x00\x50\xfe" + strings.Repeat("a", 254),
		"space in host":  "\x01\x00\x00\x50\x03c m",
	} {
		h, err := mux.ReadHeader(strings.NewReader(in))
		if !errors.Is(err, mux.ErrBadHeader) || h != (mux.Header{}) {
			t.Errorf("%s: ReadHeader = %+v, %v; want ErrBadHeader", name, h, err)
		}
	}
}

// ReadHeader must not read past the header even from a reader that would
// hand out more in one call.
func TestReadHeaderExact(t *testing.T) {
	in := "\x01\x00\x02\x2a\x03camREST"
	r := strings.NewReader(in)
	h, err := mux.ReadHeader(r)
	if err != nil || h != (mux.Header{Host: "cam", Port: 554}) {
		t.Fatalf("ReadHeader = %+v, %v", h, err)
	}
	if rest, _ := io.ReadAll(r); string(rest) != "REST" {
		t.Fatalf("left %q, want REST", rest)
	}
}

type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

func TestDatagramRoundTrip(t *testing.T) {
	var b []byte
	payloads := [][]byte{{}, []byte("rtp"), bytes.Repeat([]byte{0x80}, mux.MaxDatagram)}
	for i, p := range payloads {
		var err error
		if b, err = mux.AppendDatagram(b, byte(i%2), p); err != nil {
			t.Fatal(err)
		}
	}
	b = mux.AppendUDPPeer(b, 50000, 50001)
	// One byte at a time: the reader must not depend on how the stream
	// was cut.
	r := iotest.OneByteReader(bytes.NewReader(b))
	buf := make([]byte, mux.MaxDatagram)
	for i, p := range payloads {
		ch, n, err := mux.ReadDatagram(r, buf)
		if err != nil || ch != byte(i%2) || !bytes.Equal(buf[:n], p) {
			t.Fatalf("datagram %d: ch %d, %d bytes, %v", i, ch, n, err)
		}
	}
	ch, n, err := mux.ReadDatagram(r, buf)
	if err != nil || ch != mux.UDPChannelPeer {
		t.Fatalf("peer frame: ch %d, %v", ch, err)
	}
	if rtp, rtcp, err := mux.ParseUDPPeer(buf[:n]); err != nil || rtp != 50000 || rtcp != 50001 {
		t.Fatalf("ParseUDPPeer = %d, %d, %v", rtp, rtcp, err)
	}
	if _, _, err := mux.ReadDatagram(r, buf); err != io.EOF {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}
	// In place: header written before a payload already in the buffer.
	frame := make([]byte, mux.DatagramHeaderLen+3)
	copy(frame[mux.DatagramHeaderLen:], "abc")
	mux.PutDatagramHeader(frame, mux.UDPChannelRTCP, 3)
	want, _ := mux.AppendDatagram(nil, mux.UDPChannelRTCP, []byte("abc"))
	if !bytes.Equal(frame, want) {
		t.Fatalf("PutDatagramHeader made %x, want %x", frame, want)
	}
}

func TestDatagramErrors(t *testing.T) {
	if _, err := mux.AppendDatagram(nil, 0, make([]byte, mux.MaxDatagram+1)); !errors.Is(err, mux.ErrBadDatagram) {
		t.Errorf("oversized payload: %v", err)
	}
	buf := make([]byte, mux.MaxDatagram)
	for name, in := range map[string]string{
		"short header":    "\x00\x00",
		"short payload":   "\x00\x00\x05abc",
		"missing payload": "\x01\x00\x01",
	} {
		if _, _, err := mux.ReadDatagram(strings.NewReader(in), buf); !errors.Is(err, mux.ErrBadDatagram) {
			t.Errorf("%s: %v, want ErrBadDatagram", name, err)
		}
	}
	if _, _, err := mux.ReadDatagram(strings.NewReader("\x00\x00\x00"), buf[:10]); !errors.Is(err, mux.ErrBadDatagram) {
		t.Errorf("small buffer: %v", err)
	}
	for _, p := range [][]byte{nil, {0, 1, 0}, {0, 0, 0, 1}, {0, 1, 0, 0}, {0, 1, 0, 2, 0}} {
		if _, _, err := mux.ParseUDPPeer(p); !errors.Is(err, mux.ErrBadDatagram) {
			t.Errorf("ParseUDPPeer(%x): %v", p, err)
		}
	}
}

func TestUDPPorts(t *testing.T) {
	s := mux.FormatUDPPorts(50000, 50001)
	if s != "client_port=50000-50001" {
		t.Fatalf("FormatUDPPorts = %q", s)
	}
	if rtp, rtcp, err := mux.ParseUDPPorts(s); err != nil || rtp != 50000 || rtcp != 50001 {
		t.Fatalf("ParseUDPPorts = %d, %d, %v", rtp, rtcp, err)
	}
	for _, bad := range []string{"", "client_port=", "client_port=1", "client_port=0-1", "client_port=1-65536",
		"client_port=-1-2", "client_port=+1-2", "client_port=1-2-3", "server_port=1-2", "client_port=00000001-2", " client_port=1-2"} {
		if _, _, err := mux.ParseUDPPorts(bad); err == nil {
			t.Errorf("ParseUDPPorts(%q) accepted", bad)
		}
	}
}

// The reason of an OK status reaches the relay (a UDP relay's ports), and
// nothing after the status is read.
func TestReadStatusReason(t *testing.T) {
	var b bytes.Buffer
	mux.WriteStatus(&b, mux.OK, mux.FormatUDPPorts(4000, 4001))
	b.WriteString("rest")
	reason, err := mux.ReadStatusReason(&b)
	if err != nil || reason != "client_port=4000-4001" || b.String() != "rest" {
		t.Fatalf("ReadStatusReason = %q, %v; left %q", reason, err, b.String())
	}
	b.Reset()
	mux.WriteStatus(&b, mux.NotAllowed, "no")
	var se *mux.StatusError
	if _, err := mux.ReadStatusReason(&b); !errors.As(err, &se) || se.Code != mux.NotAllowed {
		t.Fatalf("refusal: %v", err)
	}
}
