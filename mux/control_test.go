package mux_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/nanodems/connector/mux"
)

func TestControlRoundTrip(t *testing.T) {
	msgs := []struct {
		typ mux.MsgType
		v   any
	}{
		{mux.MsgHello, &mux.Hello{AgentID: "ag-1", Version: "1.2.3", AllowlistVersion: 7}},
		{mux.MsgHelloAck, &mux.HelloAck{OK: false, Reason: "revoked", Permanent: true, Relay: "relay-0", HeartbeatSeconds: 5}},
		{mux.MsgHeartbeat, &mux.Heartbeat{BytesIn: 1 << 40, BytesOut: 3, ActiveStreams: 2, TunnelsTotal: 9}},
		{mux.MsgAllowlist, &mux.Allowlist{Version: 3, Targets: []mux.Target{{Host: "10.0.0.7", Port: 554}, {Host: "cam", Port: 80}}}},
		{mux.MsgAllowlistAck, &mux.AllowlistAck{Version: 3, Accepted: true, Held: 3}},
		{mux.MsgGoAway, &mux.GoAway{Reason: "relay draining"}},
	}
	// All messages back to back on one stream, as on the control channel.
	var b bytes.Buffer
	for _, m := range msgs {
		if err := mux.WriteMessage(&b, m.typ, m.v); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range msgs {
		typ, body, err := mux.ReadMessage(&b)
		if err != nil || typ != m.typ {
			t.Fatalf("ReadMessage = %d, %v; want type %d", typ, err, m.typ)
		}
		got := reflect.New(reflect.TypeOf(m.v).Elem()).Interface()
		if err := mux.Decode(body, got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, m.v) {
			t.Errorf("type %d: got %+v, want %+v", typ, got, m.v)
		}
	}
	if _, _, err := mux.ReadMessage(&b); err != io.EOF {
		t.Errorf("ReadMessage at a clean end = %v, want io.EOF", err)
	}
}

func TestReadMessageErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		in   string
		want error
	}{
		"half a header":  {"\x01\x00\x00", io.ErrUnexpectedEOF},
		"type 0":         {"\x00\x00\x00\x00\x02{}", mux.ErrBadControl},
		"type 11":        {"\x0b\x00\x00\x00\x02{}", mux.ErrBadControl},
		"truncated body": {"\x03\x00\x00\x00\x09{}", mux.ErrBadControl},
		"over the limit": {"\x04\x00\x80\x00\x01{}", mux.ErrBadControl},
		"4 GiB":          {"\x04\xff\xff\xff\xff{}", mux.ErrBadControl},
	} {
		if _, _, err := mux.ReadMessage(strings.NewReader(tc.in)); !errors.Is(err, tc.want) {
			t.Errorf("%s: ReadMessage = %v, want %v", name, err, tc.want)
		}
	}
}

// A peer that announces a huge body must be refused before we allocate it.
func TestReadMessageOversizeAllocatesNothing(t *testing.T) {
	hdr := []byte{byte(mux.MsgAllowlist), 0, 0, 0, 0}
	binary.BigEndian.PutUint32(hdr[1:], 1<<31)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := mux.ReadMessage(bytes.NewReader(hdr))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, mux.ErrBadControl) {
		t.Fatalf("ReadMessage = %v, want ErrBadControl", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
		t.Fatalf("refusing a 2 GiB body allocated %d bytes", n)
	}
}

func TestWriteMessageErrors(t *testing.T) {
	var b bytes.Buffer
	if err := mux.WriteMessage(&b, mux.MsgHello, make(chan int)); err == nil || b.Len() != 0 {
		t.Errorf("unencodable value: wrote %d bytes, %v", b.Len(), err)
	}
	huge := mux.Allowlist{Targets: []mux.Target{{Host: strings.Repeat("h", mux.MaxControlLen), Port: 80}}}
	if err := mux.WriteMessage(&b, mux.MsgAllowlist, huge); err == nil || b.Len() != 0 {
		t.Errorf("body over MaxControlLen: wrote %d bytes, %v", b.Len(), err)
	}
}

func TestDecodeError(t *testing.T) {
	var h mux.Hello
	for _, body := range []string{"", "{", `{"agent_id": 5}`, "[]"} {
		if err := mux.Decode([]byte(body), &h); !errors.Is(err, mux.ErrBadControl) {
			t.Errorf("Decode(%q) = %v, want ErrBadControl", body, err)
		}
	}
}
