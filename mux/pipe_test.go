package mux_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanodems/connector/mux"
)

// pipeToTarget runs the agent's side of a tunnel: Pipe between the agent's
// stream and a real loopback TCP connection to a target. It returns the
// target's end and Pipe's result.
func pipeToTarget(t *testing.T, agentStream *mux.Stream, up, down *atomic.Uint64) (*net.TCPConn, <-chan error) {
	agentConn, target := tcpPair(t)
	withDeadline(t, target)
	done, finished := make(chan error, 1), make(chan struct{})
	go func() {
		done <- mux.Pipe(agentStream, agentConn, up, down)
		close(finished)
	}()
	t.Cleanup(func() {
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Error("Pipe did not return")
		}
	})
	return target, done
}

// Pipe must carry half-close both ways between a mux.Stream and a TCP
// connection: whichever end finishes sending first, the other still
// answers in full.
func TestPipeHalfClose(t *testing.T) {
	request, answer := randomBytes(300<<10), randomBytes(1<<20)
	for _, targetFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("targetFirst=%v", targetFirst), func(t *testing.T) {
			r, a := oneStream(t)
			withDeadline(t, r)
			var up, down atomic.Uint64
			target, piped := pipeToTarget(t, a, &up, &down)

			// The target: either answer after reading the whole request
			// (an HTTP/1.0 server), or send everything first and then read
			// (a banner, then a log upload).
			served := make(chan error, 1)
			go func() {
				var got []byte
				var err error
				if !targetFirst {
					got, err = io.ReadAll(target)
				}
				if err == nil {
					_, err = target.Write(answer)
				}
				if err == nil {
					err = target.CloseWrite()
				}
				if err == nil && targetFirst {
					got, err = io.ReadAll(target)
				}
				if err == nil && !bytes.Equal(got, request) {
					err = fmt.Errorf("target read %d bytes, want %d", len(got), len(request))
				}
				target.Close()
				served <- err
			}()

			// The relay's client.
			var got []byte
			var err error
			if targetFirst {
				if got, err = io.ReadAll(r); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := r.Write(request); err != nil {
				t.Fatal(err)
			}
			if err := r.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if !targetFirst {
				if got, err = io.ReadAll(r); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(got, answer) {
				t.Fatalf("relay read %d bytes, want %d", len(got), len(answer))
			}
			if err := <-served; err != nil {
				t.Fatal(err)
			}
			if err := <-piped; err != nil {
				t.Fatalf("Pipe = %v", err)
			}
			if up.Load() != uint64(len(request)) || down.Load() != uint64(len(answer)) {
				t.Errorf("counted %d up, %d down; want %d, %d", up.Load(), down.Load(), len(request), len(answer))
			}
		})
	}
}

// When the relay's side vanishes without an EOF frame, Pipe must end and
// close the target's connection rather than wait for the target.
func TestPipeCut(t *testing.T) {
	r, a := oneStream(t)
	target, piped := pipeToTarget(t, a, nil, nil)
	if _, err := r.Write([]byte("partial req")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, err := io.ReadAtLeast(target, buf, len("partial req")); err != nil || string(buf[:n]) != "partial req" {
		t.Fatalf("target read %q, %v", buf[:n], err)
	}
	r.Close()
	select {
	case <-piped:
	case <-time.After(10 * time.Second):
		t.Fatal("Pipe still running after the stream was cut")
	}
	if n, err := target.Read(buf); err == nil {
		t.Fatalf("target read %d more bytes from a cut tunnel", n)
	}
}

func TestCopy(t *testing.T) {
	src, dst := randomBytes(200<<10), &closeWriteBuffer{}
	var count atomic.Uint64
	n, err := mux.Copy(dst, bytes.NewReader(src), &count)
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
	if _, err := mux.Copy(dst, bytes.NewReader(src), nil); !errors.Is(err, boom) || dst.closeWrites != 0 {
		t.Fatalf("Copy into a failing writer = %v with %d CloseWrites", err, dst.closeWrites)
	}
	// So is a failed read.
	dst = &closeWriteBuffer{}
	if _, err := mux.Copy(dst, io.MultiReader(bytes.NewReader(src), errReader{boom}), nil); !errors.Is(err, boom) || dst.closeWrites != 0 {
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

// BenchmarkStreamCopy measures the tunnel's copy path: bytes written to a
// TCP connection are copied by mux.Copy into a mux.Stream, cross the smux
// session (loopback TCP), and are copied by mux.Copy out of the peer's
// stream into another TCP connection. One op is one 64 KiB write. The
// "tcp" case is mux.Copy between two TCP connections alone, for scale.
func BenchmarkStreamCopy(b *testing.B) {
	const chunk = 64 << 10
	b.Run("tcp", func(b *testing.B) {
		in, copyFrom := tcpPair(b)
		copyTo, out := tcpPair(b)
		benchCopy(b, chunk, in, out, func() error {
			_, err := mux.Copy(copyTo, copyFrom, nil)
			return err
		})
	})
	b.Run("tcp-stream-tcp", func(b *testing.B) {
		in, copyFrom := tcpPair(b)
		copyTo, out := tcpPair(b)
		r, a := oneStream(b)
		benchCopy(b, chunk, in, out, func() error {
			_, err := mux.Copy(r, copyFrom, nil)
			return err
		}, func() error {
			_, err := mux.Copy(copyTo, a, nil)
			return err
		})
	})
}

// benchCopy writes b.N chunks into in, half-closes it, drains out to EOF
// and waits for the copies.
func benchCopy(b *testing.B, chunk int, in, out *net.TCPConn, copies ...func() error) {
	errc := make(chan error, len(copies))
	for _, c := range copies {
		go func() { errc <- c() }()
	}
	drained := make(chan int64, 1)
	go func() {
		n, _ := io.CopyBuffer(io.Discard, struct{ io.Reader }{out}, make([]byte, chunk))
		drained <- n
	}()
	data := randomBytes(chunk)
	b.SetBytes(int64(chunk))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := in.Write(data); err != nil {
			b.Fatal(err)
		}
	}
	in.CloseWrite()
	n := <-drained
	b.StopTimer()
	for range copies {
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
	}
	if n != int64(b.N*chunk) {
		b.Fatalf("%d bytes arrived, want %d", n, b.N*chunk)
	}
}

// The copy loop must not allocate per chunk: an idle-to-busy tunnel takes
// a pooled buffer, and nothing else. (Through a session, smux v1.5.57's
// send queue adds 3 allocations per frame; see BenchmarkStreamCopy.)
func TestCopyAllocs(t *testing.T) {
	in, copyFrom := tcpPair(t)
	copyTo, out := tcpPair(t)
	withDeadline(t, in, out)
	copied := make(chan error, 1)
	go func() {
		_, err := mux.Copy(copyTo, copyFrom, nil)
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
	if allocs != 0 {
		t.Errorf("%v allocations per 32 KiB chunk, want 0", allocs)
	}
}

// embedded is a connection that embeds a *mux.Stream, as the relay's
// tunnelConn does; its own Write must not be needed.
type embedded struct {
	*mux.Stream
	writes atomic.Int64
}

func (e *embedded) Write(p []byte) (int, error) {
	e.writes.Add(1)
	return e.Stream.Write(p)
}

// TestCopyIntoEmbeddedStream checks that Copy reads straight into the
// frames of a Stream reached through a type that embeds it: every byte
// arrives, and the copying Write is never called.
func TestCopyIntoEmbeddedStream(t *testing.T) {
	r, a := oneStream(t)
	in, src := tcpPair(t)
	withDeadline(t, in, src)
	dst := &embedded{Stream: r}
	copied := make(chan error, 1)
	go func() {
		_, err := mux.Copy(dst, src, nil)
		copied <- err
	}()
	data := randomBytes(1 << 20)
	go func() {
		in.Write(data)
		in.CloseWrite()
	}()
	got, err := io.ReadAll(a)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-copied; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, want the %d written", len(got), len(data))
	}
	if n := dst.writes.Load(); n != 0 {
		t.Errorf("Copy went through the embedding type's Write %d times, want 0", n)
	}
}
