package pipe_test

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanodems/connector/internal/pipe"
	"github.com/nanodems/connector/internal/testnet"
	"github.com/nanodems/connector/mux"
	"github.com/xtaci/smux"
)

// streamPair opens a stream on a smux session over loopback TCP and
// returns both ends as mux streams: out (the opener's) and in (the
// acceptor's), and the two sessions.
func streamPair(t *testing.T) (out, in *mux.Stream, outSess, inSess *smux.Session) {
	t.Helper()
	a, b := testnet.TCPPair(t)
	var err error
	if outSess, err = smux.Client(a, mux.Config()); err != nil {
		t.Fatal(err)
	}
	if inSess, err = smux.Server(b, mux.Config()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { outSess.Close(); inSess.Close() })
	out, in = openOn(t, outSess, inSess)
	return out, in, outSess, inSess
}

// relayed joins, as the relay does, the accepting end of a client's
// stream to the opening end of an agent's stream with JoinAsync, and
// returns the client's and the agent's ends and JoinAsync's result.
func relayed(t *testing.T, up, down *atomic.Uint64) (client, agent *mux.Stream, clientSess *smux.Session, result <-chan error) {
	client, relayA, clientSess, _ := streamPair(t)
	relayB, agent, _, _ := streamPair(t)
	done := make(chan error, 2)
	pipe.JoinAsync(relayA, relayB, up, down, func(err error) { done <- err })
	return client, agent, clientSess, done
}

// pumps counts the goroutines in this package's code: copies and pumps.
func pumps() int {
	buf := make([]byte, 1<<20)
	n := 0
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "connector/internal/pipe.") {
			n++
		}
	}
	return n
}

// waitNoPumps fails the test unless every goroutine copying for the
// joint ends within 5 s.
func waitNoPumps(t *testing.T, when string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for pumps() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d pump goroutines still running %s", pumps(), when)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestJoinAsyncBothWays: 8 MiB each way between two mux streams joined
// with JoinAsync arrive whole (SHA-256), half-close crosses each way, the
// counts are the bytes moved, done comes once with nil, and an idle
// tunnel holds no goroutine between its bursts.
func TestJoinAsyncBothWays(t *testing.T) {
	var up, down atomic.Uint64
	client, agent, _, result := relayed(t, &up, &down)

	// A round trip, then idle: no goroutine waits for the next bytes.
	client.Write([]byte("ping"))
	b := make([]byte, 4)
	if _, err := io.ReadFull(agent, b); err != nil || string(b) != "ping" {
		t.Fatalf("agent read %q, %v", b, err)
	}
	agent.Write([]byte("pong"))
	if _, err := io.ReadFull(client, b); err != nil || string(b) != "pong" {
		t.Fatalf("client read %q, %v", b, err)
	}
	waitNoPumps(t, "while the tunnel is idle")

	const size = 8 << 20
	bulkBothWays(t, client, agent, size)
	waitJoined(t, result)
	if up.Load() != size+4 || down.Load() != size+4 {
		t.Errorf("counted up %d, down %d; want %d each", up.Load(), down.Load(), size+4)
	}
	client.Close()
	agent.Close()
	waitNoPumps(t, "after the tunnel ended")
	select {
	case err := <-result:
		t.Fatalf("done called twice (second: %v)", err)
	default:
	}
}

// waitJoined fails the test unless a JoinAsync's done comes, with nil,
// within 10 s of both half-closes.
func waitJoined(t *testing.T, result <-chan error) {
	t.Helper()
	select {
	case err := <-result:
		if err != nil {
			t.Errorf("JoinAsync ended with %v after both half-closes", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("JoinAsync did not end after both half-closes")
	}
}

// bulkBothWays sends size random bytes each way at once between client
// and agent, half-closes each direction, and checks by SHA-256 that
// every byte arrived, in order.
func bulkBothWays(t *testing.T, client, agent *mux.Stream, size int) {
	t.Helper()
	send := func(w *mux.Stream) <-chan [32]byte {
		sum := make(chan [32]byte, 1)
		go func() {
			data := make([]byte, size)
			rand.Read(data)
			sum <- sha256.Sum256(data)
			for p := data; len(p) > 0; p = p[min(len(p), 40000):] {
				if _, err := w.Write(p[:min(len(p), 40000)]); err != nil {
					t.Error(err)
					return
				}
			}
			w.CloseWrite()
		}()
		return sum
	}
	recv := func(r *mux.Stream) <-chan [32]byte {
		sum := make(chan [32]byte, 1)
		go func() {
			h := sha256.New()
			n, err := io.Copy(h, r)
			if err != nil || n != int64(size) {
				t.Errorf("read %d bytes, %v; want %d and EOF", n, err, size)
			}
			sum <- [32]byte(h.Sum(nil))
		}()
		return sum
	}
	upSent, downSent := send(client), send(agent)
	upGot, downGot := recv(agent), recv(client)
	if <-upSent != <-upGot {
		t.Error("client → agent: SHA-256 differs")
	}
	if <-downSent != <-downGot {
		t.Error("agent → client: SHA-256 differs")
	}
}

// TestJoinAsyncSessionDeath: the client's session dies while the tunnel
// is idle, with no goroutine in the joint to notice a blocked read fail;
// the notification ends it, and the agent reads a cut, not an end.
func TestJoinAsyncSessionDeath(t *testing.T) {
	client, agent, clientSess, result := relayed(t, nil, nil)
	client.Write([]byte("x"))
	if _, err := io.ReadFull(agent, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	waitNoPumps(t, "while the tunnel is idle")
	clientSess.Close()
	select {
	case <-result:
	case <-time.After(10 * time.Second):
		t.Fatal("JoinAsync did not end when the client's session died")
	}
	agent.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := agent.Read(make([]byte, 1))
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("agent read %v, want io.ErrUnexpectedEOF (a cut)", err)
	}
	waitNoPumps(t, "after the tunnel was cut")
}

// burstGoroutines returns the IDs of the goroutines running a copy from a
// socket in bursts.
func burstGoroutines() []string {
	buf := make([]byte, 1<<20)
	var ids []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "pipe.runBursts") {
			ids = append(ids, strings.Fields(g)[1])
		}
	}
	return ids
}

// TestJoinAsyncSocketBursts: JoinAsync between a TCP connection and a mux
// stream holds, while idle, one goroutine, parked on the socket; every
// burst of the client's bytes that follows a pause (here: any, busyGap
// 0) ends it and the wait goes on on a fresh one (whose stack the write
// path has not grown). Bursts that follow each other closely (busyGap a
// minute) go on on the same one.
func TestJoinAsyncSocketBursts(t *testing.T) {
	for _, gap := range []time.Duration{0, time.Minute} {
		t.Run(fmt.Sprint("busyGap ", gap), func(t *testing.T) {
			pipe.SetBusyGap(t, gap)
			testSocketBursts(t, gap == 0)
		})
	}
}

func testSocketBursts(t *testing.T, fresh bool) {
	client, local := testnet.TCPPair(t)
	relaySide, remote, _, _ := streamPair(t)
	withDeadline(t, client)
	done := make(chan error, 1)
	pipe.JoinAsync(local, relaySide, nil, nil, func(err error) { done <- err })

	var seen []string
	for i := range 3 {
		msg := []byte{byte('a' + i)}
		client.Write(msg)
		b := make([]byte, 1)
		if _, err := io.ReadFull(remote, b); err != nil || b[0] != msg[0] {
			t.Fatalf("remote read %q, %v", b, err)
		}
		remote.Write(b)
		if _, err := io.ReadFull(client, b); err != nil || b[0] != msg[0] {
			t.Fatalf("client read %q, %v", b, err)
		}
		want := func(ids []string) bool {
			switch {
			case len(ids) != 1:
				return false
			case fresh:
				return !slices.Contains(seen, ids[0])
			}
			return len(seen) == 0 || ids[0] == seen[0]
		}
		var ids []string
		deadline := time.Now().Add(5 * time.Second)
		for ids = burstGoroutines(); !want(ids); ids = burstGoroutines() {
			if time.Now().After(deadline) {
				t.Fatalf("after burst %d: copy goroutines %v, want one, new each burst: %v (seen %v)", i, ids, fresh, seen)
			}
			time.Sleep(5 * time.Millisecond)
		}
		seen = append(seen, ids[0])
	}
	// The session's receive loop may still be in the joint's data
	// notification, having written the last chunk: it returns at once.
	for deadline := time.Now().Add(5 * time.Second); pumps()-1 != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("%d goroutines in the joint besides the socket's while idle", pumps()-1)
			break
		}
	}
	client.CloseWrite()
	remote.CloseWrite()
	if _, err := io.ReadAll(remote); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(client); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("JoinAsync ended with %v after both half-closes", err)
	}
	remote.Close()
	waitNoPumps(t, "after the tunnel ended")
}
