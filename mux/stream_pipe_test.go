package mux_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanodems/connector/internal/pipe"
	"github.com/nanodems/connector/internal/testnet"
	"github.com/nanodems/connector/mux"
)

// pipeToTarget runs the agent's side of a tunnel: pipe.Join between the
// agent's stream and a real loopback TCP connection to a target. It returns
// the target's end and Join's result.
func pipeToTarget(t *testing.T, agentStream *mux.Stream, up, down *atomic.Uint64) (*net.TCPConn, <-chan error) {
	agentConn, target := testnet.TCPPair(t)
	withDeadline(t, target)
	done, finished := make(chan error, 1), make(chan struct{})
	go func() {
		done <- pipe.Join(agentStream, agentConn, up, down)
		close(finished)
	}()
	t.Cleanup(func() {
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Error("Join did not return")
		}
	})
	return target, done
}

// pipe.Join must carry half-close both ways between a Stream (its
// ReadWaiter, FrameWriter and CloseWrite) and a TCP connection: whichever
// end finishes sending first, the other still answers in full.
func TestStreamJoinHalfClose(t *testing.T) {
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
				t.Fatalf("Join = %v", err)
			}
			if up.Load() != uint64(len(request)) || down.Load() != uint64(len(answer)) {
				t.Errorf("counted %d up, %d down; want %d, %d", up.Load(), down.Load(), len(request), len(answer))
			}
		})
	}
}

// When the relay's side vanishes without an EOF frame, pipe.Join must end
// and close the target's connection rather than wait for the target.
func TestStreamJoinCut(t *testing.T) {
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
		t.Fatal("Join still running after the stream was cut")
	}
	if n, err := target.Read(buf); err == nil {
		t.Fatalf("target read %d more bytes from a cut tunnel", n)
	}
}

// BenchmarkStreamCopy measures the tunnel's copy path: bytes written to a
// TCP connection are copied by pipe.Copy into a mux.Stream, cross the smux
// session (loopback TCP), and are copied by pipe.Copy out of the peer's
// stream into another TCP connection. One op is one 64 KiB write. The
// "tcp" case is pipe.Copy between two TCP connections alone, for scale.
func BenchmarkStreamCopy(b *testing.B) {
	const chunk = 64 << 10
	b.Run("tcp", func(b *testing.B) {
		in, copyFrom := testnet.TCPPair(b)
		copyTo, out := testnet.TCPPair(b)
		benchCopy(b, chunk, in, out, func() error {
			_, err := pipe.Copy(copyTo, copyFrom, nil)
			return err
		})
	})
	b.Run("tcp-stream-tcp", func(b *testing.B) {
		in, copyFrom := testnet.TCPPair(b)
		copyTo, out := testnet.TCPPair(b)
		r, a := oneStream(b)
		benchCopy(b, chunk, in, out, func() error {
			_, err := pipe.Copy(r, copyFrom, nil)
			return err
		}, func() error {
			_, err := pipe.Copy(copyTo, a, nil)
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

// TestCopyIntoEmbeddedStream checks that pipe.Copy reads straight into the
// frames of a Stream (its FrameWriter) reached through a type that embeds
// it: every byte arrives, and the copying Write is never called.
func TestCopyIntoEmbeddedStream(t *testing.T) {
	r, a := oneStream(t)
	in, src := testnet.TCPPair(t)
	withDeadline(t, in, src)
	dst := &embedded{Stream: r}
	copied := make(chan error, 1)
	go func() {
		_, err := pipe.Copy(dst, src, nil)
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

// Writes of every size around the copy buffers' edges (pipe.SmallBufSize,
// a frame, pipe.BufSize), mixed with small ones, cross a Stream and
// pipe.Join to an echoing TCP target and back intact and in order: a
// buffer that fills must neither cut a frame short nor drop a chunk.
func TestStreamJoinMixedSizes(t *testing.T) {
	r, a := oneStream(t)
	withDeadline(t, r)
	target, piped := pipeToTarget(t, a, nil, nil)
	go func() {
		io.Copy(target, target) // the echo target
		target.CloseWrite()
	}()
	var sizes []int
	for _, edge := range []int{pipe.SmallBufSize, mux.MaxPayload, pipe.BufSize} {
		for d := -4; d <= 4; d++ {
			sizes = append(sizes, edge+d, 64, 1)
		}
	}
	sizes = append(sizes, 3<<20, 64, 100_000, 7)
	total := 0
	for _, n := range sizes {
		total += n
	}
	data := randomBytes(total)
	wrote := make(chan error, 1)
	go func() {
		rest := data
		for _, n := range sizes {
			if _, err := r.Write(rest[:n]); err != nil {
				wrote <- err
				return
			}
			rest = rest[n:]
		}
		wrote <- r.CloseWrite()
	}()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %d of %d bytes: %v", len(got), total, err)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("echo of %d bytes differs (got %d)", total, len(got))
	}
	if err := <-piped; err != nil {
		t.Fatalf("Join = %v", err)
	}
}
