package mux_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xtaci/smux"

	"github.com/nanodems/connector/internal/testnet"
	"github.com/nanodems/connector/mux"
)

// TestSessionStreamsBothWays drives the patched smux write path
// (third_party/smux: direct writes when nothing is queued, batched writes
// when frames wait): 48 streams on one session write and read at once in
// both directions, in writes of 1 byte to 200 KiB, and every stream's bytes
// arrive whole and in order (SHA-256 per stream and direction).
func TestSessionStreamsBothWays(t *testing.T) {
	relay, agent := sessionPair(t)
	const streams = 48
	var wg sync.WaitGroup
	for i := range streams {
		r, a := streamPair(t, relay, agent)
		withDeadline(t, r, a)
		size := 64<<10 + i*37_001
		wg.Go(func() { sendAndCheck(t, r, a, size, uint64(i)) })
		wg.Go(func() { sendAndCheck(t, a, r, size/2, uint64(i)+1000) })
	}
	wg.Wait()
}

// sendAndCheck writes size seeded random bytes to w in writes of random
// sizes, then half-closes, while checking that rd reads exactly them.
func sendAndCheck(t *testing.T, w, rd interface {
	io.ReadWriter
	CloseWrite() error
}, size int, seed uint64) {
	data := randomBytes(size)
	want := sha256.Sum256(data)
	done := make(chan error, 1)
	go func() {
		h := sha256.New()
		_, err := io.Copy(h, rd)
		if err == nil && !bytes.Equal(h.Sum(nil), want[:]) {
			err = io.ErrUnexpectedEOF
		}
		done <- err
	}()
	rng := rand.New(rand.NewPCG(seed, seed))
	for off := 0; off < len(data); {
		n := min(len(data)-off, 1+rng.IntN(200<<10))
		if rng.IntN(4) == 0 {
			n = min(n, 1+rng.IntN(64)) // small writes: control-sized frames
		}
		if _, err := w.Write(data[off : off+n]); err != nil {
			t.Errorf("stream %d: write: %v", seed, err)
			return
		}
		off += n
	}
	if err := w.CloseWrite(); err != nil {
		t.Errorf("stream %d: close write: %v", seed, err)
	}
	if err := <-done; err != nil {
		t.Errorf("stream %d: the reader did not get the %d bytes written: %v", seed, size, err)
	}
}

// countWrites counts the Writes that reach a connection.
type countWrites struct {
	net.Conn
	n atomic.Int64
}

func (c *countWrites) Write(p []byte) (int, error) {
	c.n.Add(1)
	return c.Conn.Write(p)
}

// countedSessionPair is sessionPair with the writes of each end counted.
func countedSessionPair(t *testing.T) (relay, agent *smux.Session, relayW, agentW *countWrites) {
	t.Helper()
	c1, c2 := testnet.TCPPair(t)
	relayW, agentW = &countWrites{Conn: c1}, &countWrites{Conn: c2}
	relay, err := smux.Client(relayW, mux.Config())
	if err != nil {
		t.Fatal(err)
	}
	agent, err = smux.Server(agentW, mux.Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close(); agent.Close() })
	return relay, agent, relayW, agentW
}

// TestOpenTunnelOneWrite: a tunnel's SYN and header reach the connection
// in one write, and the peer reads the header as the stream's first bytes.
func TestOpenTunnelOneWrite(t *testing.T) {
	relay, agent, cw, _ := countedSessionPair(t)
	want := mux.Header{Flags: mux.FlagDedicated, Host: "192.0.2.7", Port: 554}
	before := cw.n.Load()
	st, err := mux.OpenTunnel(relay, want)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if n := cw.n.Load() - before; n != 1 {
		t.Fatalf("opening a tunnel made %d writes, want 1", n)
	}
	as, err := agent.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	as.SetDeadline(time.Now().Add(10 * time.Second))
	got, err := mux.ReadHeader(as)
	if err != nil || got != want {
		t.Fatalf("peer read %+v, %v; want %+v", got, err, want)
	}
	// The stream goes on as any other, both ways.
	if _, err := st.Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 5)
	if _, err := io.ReadFull(as, b); err != nil || string(b) != "after" {
		t.Fatalf("peer read %q, %v", b, err)
	}
	if _, err := mux.OpenTunnel(relay, mux.Header{Host: "", Port: 1}); !errors.Is(err, mux.ErrBadHeader) {
		t.Fatalf("a bad header opened a stream: %v", err)
	}
}

// TestLastEOFLeavesWithFIN: the side that sends its EOF after reading the
// peer's sends the EOF frame and the stream's FIN in one write, and the
// peer reads EOF and sees the stream end.
func TestLastEOFLeavesWithFIN(t *testing.T) {
	relay, agent, _, cw := countedSessionPair(t)
	r, a := streamPair(t, relay, agent)
	withDeadline(t, r, a)
	if _, err := r.Write([]byte("request")); err != nil {
		t.Fatal(err)
	}
	if err := r.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(a)
	if err != nil || string(b) != "request" {
		t.Fatalf("agent read %q, %v", b, err)
	}
	if _, err := a.Write([]byte("answer")); err != nil {
		t.Fatal(err)
	}
	n0 := cw.n.Load()
	if err := a.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n := cw.n.Load() - n0; n != 1 {
		t.Fatalf("the last EOF and the FIN took %d writes, want 1", n)
	}
	b, err = io.ReadAll(r)
	if err != nil || string(b) != "answer" {
		t.Fatalf("relay read %q, %v", b, err)
	}
	// The agent's smux stream is gone: the relay's raw stream sees its FIN.
	r.Raw().SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.Raw().Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("relay's smux stream after the agent's FIN: %v, want EOF", err)
	}
}
