package relay

import (
	"io"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/mem"
)

// countingPool counts the buffers given back to it.
type countingPool struct{ puts atomic.Int32 }

func (p *countingPool) Get(n int) *[]byte { b := make([]byte, n); return &b }
func (p *countingPool) Put(*[]byte)       { p.puts.Add(1) }

// TestBridgeCodecFreesFrames: a data frame's buffers go back to their
// pool once gRPC has dropped its reference and Read has consumed them;
// with one reference too many they never did, and every HTTP/2 frame the
// relay received was a fresh allocation.
func TestBridgeCodecFreesFrames(t *testing.T) {
	pool := &countingPool{}
	var data mem.BufferSlice
	first := append([]byte{frameData, 1, 2, 3}, make([]byte, 2000)...) // pooled: over mem's 1 KiB threshold
	for _, part := range [][]byte{first, make([]byte, 3000)} {
		b := pool.Get(len(part))
		copy(*b, part)
		data = append(data, mem.NewBuffer(b, pool))
	}
	var f frame
	if err := (bridgeCodec{}).Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	data.Free() // what gRPC does once Unmarshal returns
	if got := pool.puts.Load(); got != 0 {
		t.Fatalf("%d buffers back in the pool before the frame was read", got)
	}
	got, err := io.ReadAll(f.data)
	if err != nil || len(got) != 5003 || got[0] != 1 {
		t.Fatalf("read %d bytes (%v), want 5003 starting with 1", len(got), err)
	}
	f.free()
	if got := pool.puts.Load(); got != 2 {
		t.Fatalf("%d of 2 buffers back in the pool after the frame was read", got)
	}
}

// TestBridgeCodecRoundTrip: every kind of frame crosses the codec intact,
// the body in a buffer of its own power of two.
func TestBridgeCodecRoundTrip(t *testing.T) {
	for _, f := range []frame{
		{kind: frameOpen, body: []byte(`{"handle":"h"}`)},
		{kind: frameStatus, body: []byte{bridgeOK}},
		{kind: frameEOF},
		{kind: frameAbort, body: []byte("cut")},
		{kind: frameData, body: make([]byte, 64<<10)},
	} {
		out, err := (bridgeCodec{}).Marshal(&f)
		if err != nil {
			t.Fatal(err)
		}
		if len(f.body) > 0 && cap(out[1].ReadOnlyData()) != 1<<bridgeClass(len(f.body)) {
			t.Fatalf("frame %q: body of %d bytes in a buffer of %d", f.kind, len(f.body), cap(out[1].ReadOnlyData()))
		}
		var g frame
		if err := (bridgeCodec{}).Unmarshal(out, &g); err != nil {
			t.Fatal(err)
		}
		out.Free()
		body := g.body
		if g.data != nil {
			body, _ = io.ReadAll(g.data)
			g.free()
		}
		if g.kind != f.kind || string(body) != string(f.body) {
			t.Fatalf("frame %q with %d bytes came back as %q with %d", f.kind, len(f.body), g.kind, len(body))
		}
	}
}

// TestBridgePool: a buffer is of the smallest class that holds it, comes
// back from Put, and one larger than the largest class is allocated.
func TestBridgePool(t *testing.T) {
	for _, tc := range []struct{ n, cap int }{{1, 256}, {256, 256}, {257, 512}, {16 << 10, 16 << 10}, {64<<10 + 1, 128 << 10}, {1 << 20, 1 << 20}, {1<<20 + 1, 1<<20 + 1}} {
		b := bridgeBuffers.Get(tc.n)
		if len(*b) != tc.n || cap(*b) != tc.cap {
			t.Fatalf("Get(%d): len %d cap %d, want cap %d", tc.n, len(*b), cap(*b), tc.cap)
		}
		bridgeBuffers.Put(b)
	}
	odd := make([]byte, 1000)
	bridgeBuffers.Put(&odd) // not one of its own: dropped, not handed out as 1024
	if b := bridgeBuffers.Get(1000); cap(*b) != 1024 {
		t.Fatalf("Get(1000) after a foreign Put: cap %d", cap(*b))
	}
}
