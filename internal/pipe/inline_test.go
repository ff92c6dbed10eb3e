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
	waitJoined(t, result)
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
	waitJoined(t, result1)
	waitJoined(t, result2)
	out1.Close()
	out2.Close()
}

// waitAware is a session's connection that says whether a write would
// wait, as the connector's coalescing TLS connection does (from the
// socket's queue); here the test decides.
type waitAware struct {
	net.Conn
	wait atomic.Bool
}

func (c *waitAware) WriteWouldWait(int) bool { return c.wait.Load() }

// relayedInline is relayed with the relay's two sessions on waitAware
// connections: toClient under the client's session, toAgent under the
// agent's.
func relayedInline(t *testing.T, up, down *atomic.Uint64) (client, agent *mux.Stream, toClient, toAgent *waitAware, result <-chan error) {
	t.Helper()
	session := func(c net.Conn, server bool) *smux.Session {
		var s *smux.Session
		var err error
		if server {
			s, err = smux.Server(c, mux.Config())
		} else {
			s, err = smux.Client(c, mux.Config())
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	c1, r1 := testnet.TCPPair(t)
	r2, a2 := testnet.TCPPair(t)
	toClient, toAgent = &waitAware{Conn: r1}, &waitAware{Conn: r2}
	client, relayA := openOn(t, session(c1, false), session(toClient, true))
	relayB, agent := openOn(t, session(toAgent, false), session(a2, true))
	done := make(chan error, 2)
	pipe.JoinAsync(relayA, relayB, up, down, func(err error) { done <- err })
	return client, agent, toClient, toAgent, done
}

// TestJoinAsyncInlineRelay: between two sessions whose connections take
// a write at once, the relay forwards each chunk on the receive loop
// that delivered it; when one says a write would wait, chunks toward it
// go through the pump's goroutine; either way every byte arrives, in
// order, counted.
func TestJoinAsyncInlineRelay(t *testing.T) {
	var up, down atomic.Uint64
	client, agent, _, toAgent, result := relayedInline(t, &up, &down)

	trips := func(n int) {
		t.Helper()
		msg, got := make([]byte, 64), make([]byte, 64)
		for i := range n {
			rand.Read(msg)
			client.Write(msg)
			if _, err := io.ReadFull(agent, got); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("trip %d: agent read %x, %v; want %x", i, got, err, msg)
			}
			agent.Write(got)
			if _, err := io.ReadFull(client, got); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("trip %d: client read %x, %v; want %x", i, got, err, msg)
			}
		}
	}
	before := pipe.InlineChunks()
	trips(200)
	if n := pipe.InlineChunks() - before; n < 2*200*9/10 {
		t.Errorf("%d of %d chunks forwarded on a receive loop", n, 2*200)
	}

	toAgent.wait.Store(true)
	before = pipe.InlineChunks()
	trips(100)
	if n := pipe.InlineChunks() - before; n > 100+10 {
		t.Errorf("%d chunks forwarded on a receive loop with the agent's connection saying a write would wait; want the 100 toward the client at most", n)
	}
	toAgent.wait.Store(false)

	// Bulk both ways at once: windows fill, frames wait.
	const size = 8 << 20
	bulkBothWays(t, client, agent, size)
	waitJoined(t, result)
	if want := uint64(300*64 + size); up.Load() != want || down.Load() != want {
		t.Errorf("counted up %d, down %d; want %d each", up.Load(), down.Load(), want)
	}
	client.Close()
	agent.Close()
}
