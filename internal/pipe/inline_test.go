package pipe_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanodems/connector/internal/pipe"
	"github.com/nanodems/connector/internal/testnet"
	"github.com/nanodems/connector/mux"
	"github.com/xtaci/smux"
)

// openOn opens one more stream on a session pair from streamPair.
func openOn(t *testing.T, outSess, inSess *smux.Session) (out, in *mux.Stream) {
	t.Helper()
	st, err := outSess.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte{0}) // the peer accepts on the first frame
	peer, err := inSess.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(peer, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	return mux.NewStream(st), mux.NewStream(peer)
}

// toSocket joins in to a new loopback socket as the agent joins a tunnel
// to its target, and returns the target's end of the socket and the
// join's result.
func toSocket(t *testing.T, in *mux.Stream, fromStream, toStream *atomic.Uint64) (target *net.TCPConn, result <-chan error) {
	near, far := testnet.TCPPair(t)
	done := make(chan error, 1)
	pipe.JoinAsync(in, near, fromStream, toStream, func(err error) { done <- err })
	return far, done
}

// TestJoinAsyncInlineEcho: chunks from a stream to a socket are written
// on the session's receive loop, and the end of the stream still
// half-closes the socket (on the pump's goroutine).
func TestJoinAsyncInlineEcho(t *testing.T) {
	var down, up atomic.Uint64
	out, in, _, _ := streamPair(t)
	target, result := toSocket(t, in, &down, &up)
	withDeadline(t, target)

	const trips = 200
	before := pipe.InlineChunks()
	msg, got := make([]byte, 64), make([]byte, 64)
	for i := range trips {
		rand.Read(msg)
		if _, err := out.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(target, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("trip %d: target read %x, %v; want %x", i, got, err, msg)
		}
		if _, err := target.Write(got); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(out, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("trip %d: stream read %x, %v; want %x", i, got, err, msg)
		}
	}
	// Every chunk but one whose delivery met a running pump goroutine
	// (the start's, or the scheduler's delay) goes inline.
	if n := pipe.InlineChunks() - before; n < trips*9/10 {
		t.Errorf("%d of %d chunks written on the receive loop", n, trips)
	}

	out.Write([]byte("last"))
	out.CloseWrite()
	rest, err := io.ReadAll(target)
	if err != nil || string(rest) != "last" {
		t.Fatalf("target read %q, %v after the stream's EOF; want \"last\" and EOF", rest, err)
	}
	target.Write([]byte("bye"))
	target.CloseWrite()
	rest, err = io.ReadAll(out)
	if err != nil || string(rest) != "bye" {
		t.Fatalf("stream read %q, %v after the target's EOF; want \"bye\" and EOF", rest, err)
	}
	select {
	case err := <-result:
		if err != nil {
			t.Errorf("JoinAsync ended with %v after both half-closes", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("JoinAsync did not end after both half-closes")
	}
	if want := uint64(trips*64 + 4); down.Load() != want {
		t.Errorf("counted %d bytes stream → socket, want %d", down.Load(), want)
	}
	if want := uint64(trips*64 + 3); up.Load() != want {
		t.Errorf("counted %d bytes socket → stream, want %d", up.Load(), want)
	}
	out.Close()
}

// TestJoinAsyncInlineStuckSocket: a target that stops reading leaves the
// socket full; the rest of a chunk waits on the pump's goroutine, not on
// the receive loop, so another tunnel of the same session goes on, and
// no byte is lost or reordered when the target reads again.
func TestJoinAsyncInlineStuckSocket(t *testing.T) {
	out1, in1, outSess, inSess := streamPair(t)
	out2, in2 := openOn(t, outSess, inSess)
	stuck, result1 := toSocket(t, in1, nil, nil)
	live, result2 := toSocket(t, in2, nil, nil)
	withDeadline(t, stuck, live)

	// Far more than the socket's buffers and the stream's window hold.
	const size = 24 << 20
	data := make([]byte, size)
	rand.Read(data)
	sent := make(chan error, 1)
	go func() {
		_, err := out1.Write(data)
		if err == nil {
			err = out1.CloseWrite()
		}
		sent <- err
	}()
	time.Sleep(300 * time.Millisecond) // the stuck socket fills up

	msg := []byte("still flowing")
	for i := range 20 {
		live.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := out2.Write(msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(live, got); err != nil {
			t.Fatalf("trip %d beside a stuck socket: %v (the receive loop waits on the stuck socket?)", i, err)
		}
	}
	select {
	case err := <-sent:
		t.Fatalf("the whole %d bytes went into a socket nobody reads (%v)", size, err)
	default:
	}

	h := sha256.New()
	n, err := io.Copy(h, stuck)
	if err != nil || n != size {
		t.Fatalf("stuck target read %d bytes, %v; want %d and EOF", n, err, size)
	}
	if [32]byte(h.Sum(nil)) != sha256.Sum256(data) {
		t.Error("SHA-256 of what the stuck target read differs")
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	stuck.CloseWrite()
	live.CloseWrite()
	out2.CloseWrite()
	for _, r := range []<-chan error{result1, result2} {
		select {
		case err := <-r:
			if err != nil {
				t.Errorf("JoinAsync ended with %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("JoinAsync did not end after both half-closes")
		}
	}
	out1.Close()
	out2.Close()
}
