package pipe_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanodems/connector/internal/pipe"
	"github.com/nanodems/connector/internal/testnet"
)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)}).Read(b)
	return b
}

// withDeadline makes a stuck read or write fail the test instead of
// hanging it.
func withDeadline(tb testing.TB, conns ...net.Conn) {
	for _, c := range conns {
		if err := c.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
			tb.Fatal(err)
		}
	}
}

func TestCopy(t *testing.T) {
	src, dst := randomBytes(200<<10), &closeWriteBuffer{}
	var count atomic.Uint64
	n, err := pipe.Copy(dst, bytes.NewReader(src), &count)
	if err != nil || n != int64(len(src)) || count.Load() != uint64(len(src)) {
		t.Fatalf("Copy = %d, %v, counted %d; want %d", n, err, count.Load(), len(src))
	}
	if !bytes.Equal(dst.Bytes(), src) || dst.closeWrites != 1 {
		t.Fatalf("dst has %d bytes, %d CloseWrites", dst.Len(), dst.closeWrites)
	}

	// A failed write is an error and no half-close: the peer must not take
	// a broken copy for a complete one.
	boom := errors.New("boom")
	dst = &closeWriteBuffer{err: boom}
	if _, err := pipe.Copy(dst, bytes.NewReader(src), nil); !errors.Is(err, boom) || dst.closeWrites != 0 {
		t.Fatalf("Copy into a failing writer = %v with %d CloseWrites", err, dst.closeWrites)
	}
	// So is a failed read.
	dst = &closeWriteBuffer{}
	if _, err := pipe.Copy(dst, io.MultiReader(bytes.NewReader(src), errReader{boom}), nil); !errors.Is(err, boom) || dst.closeWrites != 0 {
		t.Fatalf("Copy from a failing reader = %v with %d CloseWrites", err, dst.closeWrites)
	}
}

type closeWriteBuffer struct {
	bytes.Buffer
	err         error
	closeWrites int
}

func (b *closeWriteBuffer) Write(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	return b.Buffer.Write(p)
}

func (b *closeWriteBuffer) CloseWrite() error { b.closeWrites++; return nil }

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// lengthFramer is a FrameWriter with a header of its own size, the shape
// of a mux stream's frames. Its Write fails the test: Copy must use frames.
type lengthFramer struct {
	t          *testing.T
	header     int
	maxPayload int
	out        bytes.Buffer
	largest    int
}

func (f *lengthFramer) FrameLayout() (int, int) { return f.header, f.maxPayload }

func (f *lengthFramer) WriteFrame(frame []byte) error {
	payload := len(frame) - f.header
	if payload <= 0 || payload > f.maxPayload {
		return fmt.Errorf("frame with %d payload bytes, want 1..%d", payload, f.maxPayload)
	}
	f.out.Write(frame[f.header:])
	f.largest = max(f.largest, payload)
	return nil
}

func (f *lengthFramer) Write([]byte) (int, error) {
	f.t.Error("Copy wrote through Write instead of WriteFrame")
	return 0, errors.New("not framed")
}

// A FrameWriter destination gets every byte as frames with its header's
// room in front and no payload above its maximum, clamped to what fits in
// one pooled buffer after the header.
func TestCopyFrames(t *testing.T) {
	src := randomBytes(1<<20 + 17)
	for _, maxPayload := range []int{1000, pipe.BufSize - 2, 1 << 20} {
		t.Run(fmt.Sprint(maxPayload), func(t *testing.T) {
			f := &lengthFramer{t: t, header: 2, maxPayload: maxPayload}
			n, err := pipe.Copy(f, bytes.NewReader(src), nil)
			if err != nil || n != int64(len(src)) {
				t.Fatalf("Copy = %d, %v; want %d", n, err, len(src))
			}
			if !bytes.Equal(f.out.Bytes(), src) {
				t.Fatalf("frames carried %d bytes, not the %d sent", f.out.Len(), len(src))
			}
			if want := min(maxPayload, pipe.BufSize-2); f.largest != want {
				t.Errorf("largest frame payload %d, want %d", f.largest, want)
			}
		})
	}
}

// waitingReader is a ReadWaiter whose wait ends with err before any read.
type waitingReader struct {
	err   error
	reads int
}

func (w *waitingReader) WaitRead() error { return w.err }

func (w *waitingReader) Read([]byte) (int, error) { w.reads++; return 0, io.EOF }

// A ReadWaiter source is waited on before Copy reads: an EOF from the wait
// is a clean end (half-close), any other error is Copy's error.
func TestCopyWaitsOnReadWaiter(t *testing.T) {
	src, dst := &waitingReader{err: io.EOF}, &closeWriteBuffer{}
	if n, err := pipe.Copy(dst, src, nil); n != 0 || err != nil || dst.closeWrites != 1 || src.reads != 0 {
		t.Fatalf("Copy = %d, %v with %d CloseWrites and %d reads; want a clean end before any read", n, err, dst.closeWrites, src.reads)
	}
	boom := errors.New("boom")
	src, dst = &waitingReader{err: boom}, &closeWriteBuffer{}
	if _, err := pipe.Copy(dst, src, nil); !errors.Is(err, boom) || dst.closeWrites != 0 || src.reads != 0 {
		t.Fatalf("Copy = %v with %d CloseWrites and %d reads; want boom, no half-close, no read", err, dst.closeWrites, src.reads)
	}
}

// The copy loop must not allocate per chunk: an idle-to-busy tunnel takes
// a pooled buffer, and nothing else.
func TestCopyAllocs(t *testing.T) {
	in, copyFrom := testnet.TCPPair(t)
	copyTo, out := testnet.TCPPair(t)
	withDeadline(t, in, out)
	copied := make(chan error, 1)
	go func() {
		_, err := pipe.Copy(copyTo, copyFrom, nil)
		copied <- err
	}()
	data, buf := randomBytes(32<<10), make([]byte, 32<<10)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := in.Write(data); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(out, buf); err != nil {
			t.Fatal(err)
		}
	})
	in.CloseWrite()
	if err := <-copied; err != nil {
		t.Fatal(err)
	}
	// A chunk takes its buffers from the pool (a read that finds the
	// socket empty puts its buffer back before it waits): none is
	// allocated, but under -race, where the pool drops a quarter of
	// what it is given, a few are.
	limit := 0.0
	if raceEnabled {
		limit = 2
	}
	if allocs > limit {
		t.Errorf("%v allocations per 32 KiB chunk, want at most %v", allocs, limit)
	}
}

// A source that is a descriptor but no socket (stdin, a pipe) is read in
// the poller as a socket is.
func TestCopyFromOSPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	data := randomBytes(300 << 10)
	go func() {
		w.Write(data)
		w.Close()
	}()
	dst := &closeWriteBuffer{}
	if n, err := pipe.Copy(dst, r, nil); err != nil || n != int64(len(data)) || !bytes.Equal(dst.Bytes(), data) || dst.closeWrites != 1 {
		t.Fatalf("Copy from a pipe = %d, %v with %d CloseWrites; want %d bytes and a half-close", n, err, dst.closeWrites, len(data))
	}
}

// capFramer is a FrameWriter that reports the capacity of the buffer each
// frame was read into and its payload, in the order they were written.
type capFramer struct {
	frames chan [2]int // cap, payload
	out    bytes.Buffer
}

func (f *capFramer) FrameLayout() (int, int) { return 3, 65532 }

func (f *capFramer) WriteFrame(frame []byte) error {
	f.out.Write(frame[3:])
	f.frames <- [2]int{cap(frame), len(frame) - 3}
	return nil
}

func (f *capFramer) Write([]byte) (int, error) { return 0, errors.New("not framed") }

// A small message is read into a small buffer, so a connection waiting on
// its destination holds kilobytes; bulk data moves in full frames after
// the first small read; and once the bulk ends, small again.
func TestCopyBufferFollowsLoad(t *testing.T) {
	in, copyFrom := testnet.TCPPair(t)
	withDeadline(t, in, copyFrom)
	f := &capFramer{frames: make(chan [2]int, 1024)}
	copied := make(chan error, 1)
	go func() {
		_, err := pipe.Copy(f, copyFrom, nil)
		copied <- err
	}()
	next := func() [2]int {
		select {
		case fr := <-f.frames:
			return fr
		case <-time.After(20 * time.Second):
			t.Fatal("no frame")
			return [2]int{}
		}
	}
	small := func(what string) {
		if _, err := in.Write(randomBytes(64)); err != nil {
			t.Fatal(err)
		}
		if fr := next(); fr[0] != pipe.SmallBufSize || fr[1] != 64 {
			t.Fatalf("%s: 64 B read into a %d B buffer as %d B; want a %d B buffer", what, fr[0], fr[1], pipe.SmallBufSize)
		}
	}
	small("first message")
	small("second message")

	bulk := randomBytes(4 << 20)
	go in.Write(bulk)
	got, largest := 0, 0
	for got < len(bulk) {
		fr := next()
		got += fr[1]
		largest = max(largest, fr[1])
	}
	if largest != 65532 {
		t.Errorf("largest frame of a 4 MiB transfer carried %d B, want 65532", largest)
	}
	// The first read after the bulk may still take a large buffer (the
	// bulk's last read filled one); it brings 64 B, so the next is small.
	if _, err := in.Write(randomBytes(64)); err != nil {
		t.Fatal(err)
	}
	if fr := next(); fr[1] != 64 {
		t.Fatalf("message after the bulk read as %d B", fr[1])
	}
	small("second message after the bulk")
	in.CloseWrite()
	if err := <-copied; err != nil {
		t.Fatal(err)
	}
	if f.out.Len() != 64*4+len(bulk) || !bytes.Equal(f.out.Bytes()[128:128+len(bulk)], bulk) {
		t.Fatalf("destination got %d bytes, want %d in order", f.out.Len(), 64*4+len(bulk))
	}
}
