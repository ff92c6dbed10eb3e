package fuzz

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"runtime/metrics"
	"testing"

	"github.com/nanodems/connector/mux"
)

func FuzzControl(f *testing.F) {
	for _, m := range []struct {
		t mux.MsgType
		v any
	}{
		{mux.MsgHello, mux.Hello{AgentID: "ag-1", Version: "1.2.3", AllowlistVersion: 7}},
		{mux.MsgHelloAck, mux.HelloAck{OK: false, Reason: "revoked", Permanent: true, HeartbeatSeconds: 5}},
		{mux.MsgHeartbeat, mux.Heartbeat{BytesIn: 1 << 40, BytesOut: 3, ActiveStreams: 2, TunnelsTotal: 9}},
		{mux.MsgAllowlist, mux.Allowlist{Version: 3, Targets: []mux.Target{{Host: "10.0.0.7", Port: 554}, {Host: "cam", Port: 80}}}},
		{mux.MsgAllowlistAck, mux.AllowlistAck{Version: 3, Held: 2, Reason: "too many targets"}},
	} {
		var b bytes.Buffer
		if err := mux.WriteMessage(&b, m.t, m.v); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
		f.Add(b.Bytes()[:b.Len()-1]) // truncated body
	}
	f.Add([]byte{})
	f.Add([]byte{byte(mux.MsgHello), 0, 0})                           // truncated length
	f.Add([]byte{0, 0, 0, 0, 2, '{', '}'})                            // type 0
	f.Add([]byte{11, 0, 0, 0, 2, '{', '}'})                           // type past the last
	f.Add([]byte{byte(mux.MsgHeartbeat), 0xff, 0xff, 0xff, 0xff})     // 4 GiB body
	f.Add([]byte{byte(mux.MsgAllowlist), 0, 0x80, 0, 1, '{'})         // MaxControlLen+1
	f.Add([]byte{byte(mux.MsgHello), 0, 0, 0, 4, 'n', 'u', 'l', 'l'}) // JSON null
	f.Add([]byte{byte(mux.MsgAllowlist), 0, 0, 0, 15, '{', '"', 't', 'a', 'r', 'g', 'e', 't', 's', '"', ':', '[', '1', ']', '}'})

	allocs := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	allocated := func() uint64 { metrics.Read(allocs); return allocs[0].Value.Uint64() }

	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		oversize := len(data) >= 5 && binary.BigEndian.Uint32(data[1:5]) > mux.MaxControlLen
		before := allocated()
		typ, body, err := mux.ReadMessage(r)
		if oversize && err == nil {
			t.Fatalf("accepted a body of %d bytes", binary.BigEndian.Uint32(data[1:5]))
		}
		if oversize && data[0] >= byte(mux.MsgHello) && data[0] <= byte(mux.MsgAllowlistAck) {
			if got := allocated() - before; got >= 1<<20 {
				t.Fatalf("rejecting an oversize body allocated %d bytes", got)
			}
			if !errors.Is(err, mux.ErrBadControl) || r.Len() != len(data)-5 {
				t.Fatalf("oversize body: err %v, consumed %d bytes, want ErrBadControl after 5", err, len(data)-r.Len())
			}
		}
		if err != nil {
			if len(data) >= 5 && !errors.Is(err, mux.ErrBadControl) {
				t.Fatalf("error %v does not wrap ErrBadControl", err)
			}
			if len(data) < 5 && err != io.EOF && err != io.ErrUnexpectedEOF {
				t.Fatalf("short input: error %v, want EOF or ErrUnexpectedEOF", err)
			}
			return
		}
		if len(body) != len(data)-5-r.Len() || !bytes.Equal(body, data[5:5+len(body)]) {
			t.Fatalf("type %d body %q is not the input's", typ, body)
		}
		for _, v := range []any{new(mux.Hello), new(mux.HelloAck), new(mux.Heartbeat), new(mux.Allowlist), new(mux.AllowlistAck)} {
			if err := mux.Decode(body, v); err != nil {
				if !errors.Is(err, mux.ErrBadControl) {
					t.Fatalf("Decode into %T: %v does not wrap ErrBadControl", v, err)
				}
				continue
			}
			// What decoded must survive a round trip unchanged.
			var b bytes.Buffer
			if err := mux.WriteMessage(&b, typ, v); err != nil {
				t.Fatalf("re-encode %T: %v", v, err)
			}
			typ2, body2, err := mux.ReadMessage(&b)
			if err != nil || typ2 != typ {
				t.Fatalf("re-read %T: type %d, %v", v, typ2, err)
			}
			v2 := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			if err := mux.Decode(body2, v2); err != nil {
				t.Fatalf("re-decode %T from %q: %v", v, body2, err)
			}
			if !reflect.DeepEqual(v, v2) {
				t.Fatalf("%T round trip: %+v became %+v", v, v, v2)
			}
		}
	})
}
