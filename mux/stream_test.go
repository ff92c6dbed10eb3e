package mux_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/xtaci/smux"

	"github.com/nanodems/connector/internal/testnet"
	"github.com/nanodems/connector/mux"
)

// sessionPair returns the relay (client) and agent (server) ends of an smux
// session over loopback TCP, configured as in production.
func sessionPair(tb testing.TB) (relay, agent *smux.Session) {
	tb.Helper()
	c1, c2 := testnet.TCPPair(tb)
	relay, err := smux.Client(c1, mux.Config())
	if err != nil {
		tb.Fatal(err)
	}
	agent, err = smux.Server(c2, mux.Config())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { relay.Close(); agent.Close() })
	return relay, agent
}

// streamPair opens a stream on relay and accepts it on agent, both framed.
func streamPair(tb testing.TB, relay, agent *smux.Session) (r, a *mux.Stream) {
	tb.Helper()
	rs, err := relay.OpenStream()
	if err != nil {
		tb.Fatal(err)
	}
	as, err := agent.AcceptStream()
	if err != nil {
		tb.Fatal(err)
	}
	r, a = mux.NewStream(rs), mux.NewStream(as)
	tb.Cleanup(func() { r.Close(); a.Close() })
	return r, a
}

// oneStream is streamPair on a session of its own.
func oneStream(tb testing.TB) (r, a *mux.Stream) {
	relay, agent := sessionPair(tb)
	return streamPair(tb, relay, agent)
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

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)}).Read(b)
	return b
}

func TestStreamBothWays(t *testing.T) {
	r, a := oneStream(t)
	withDeadline(t, r, a)
	for i := range 3 {
		ping, pong := fmt.Sprintf("ping %d", i), fmt.Sprintf("pong %d", i)
		if _, err := r.Write([]byte(ping)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(ping))
		if _, err := io.ReadFull(a, buf); err != nil || string(buf) != ping {
			t.Fatalf("agent read %q, %v; want %q", buf, err, ping)
		}
		if _, err := a.Write([]byte(pong)); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(r, buf[:len(pong)]); err != nil || string(buf) != pong {
			t.Fatalf("relay read %q, %v; want %q", buf, err, pong)
		}
	}
}

// The half-close case: the client sends a request and CloseWrite; the
// target reads to EOF, only then answers, and closes. The whole answer must
// arrive, however large.
func TestStreamHalfClose(t *testing.T) {
	relay, agent := sessionPair(t)
	for _, size := range []int{0, 1, mux.MaxPayload + 1, 1 << 20, 3<<20 + 7} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			r, a := streamPair(t, relay, agent)
			withDeadline(t, r, a)
			request, answer := randomBytes(size/3+1), randomBytes(size)
			done := make(chan error, 1)
			go func() {
				got, err := io.ReadAll(a)
				if err == nil && !bytes.Equal(got, request) {
					err = fmt.Errorf("agent read %d bytes, want %d", len(got), len(request))
				}
				if err == nil {
					_, err = a.Write(answer)
				}
				if err == nil {
					err = a.CloseWrite()
				}
				a.Close()
				done <- err
			}()
			if _, err := r.Write(request); err != nil {
				t.Fatal(err)
			}
			if err := r.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
				t.Errorf("Write after CloseWrite = %v, want io.ErrClosedPipe", err)
			}
			if err := r.CloseWrite(); err != nil {
				t.Errorf("second CloseWrite = %v", err)
			}
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, answer) {
				t.Fatalf("relay read %d bytes, %v; want %d bytes and EOF", len(got), err, len(answer))
			}
			if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Errorf("Read after EOF = %d, %v", n, err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Both directions at once, each side half-closing when it is done.
func TestStreamFullDuplex(t *testing.T) {
	r, a := oneStream(t)
	withDeadline(t, r, a)
	up, down := randomBytes(2<<20), randomBytes(2<<20+1)
	sendAndClose := func(s *mux.Stream, data []byte, errc chan<- error) {
		_, err := s.Write(data)
		if err == nil {
			err = s.CloseWrite()
		}
		errc <- err
	}
	errc := make(chan error, 2)
	go sendAndClose(r, up, errc)
	go sendAndClose(a, down, errc)
	gotUp, errA := io.ReadAll(a)
	gotDown, errR := io.ReadAll(r)
	if errA != nil || errR != nil || !bytes.Equal(gotUp, up) || !bytes.Equal(gotDown, down) {
		t.Fatalf("up %d/%d bytes (%v), down %d/%d bytes (%v)", len(gotUp), len(up), errA, len(gotDown), len(down), errR)
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

// A stream closed without an EOF frame was cut: the peer must not read a
// clean io.EOF, whether the cut falls between frames or inside one.
func TestStreamCut(t *testing.T) {
	relay, agent := sessionPair(t)
	for name, raw := range map[string][]byte{
		"between frames":  {0, 0, 2, 'h', 'i'},
		"inside a frame":  {0, 0, 9, 'h', 'i'},
		"inside a header": {0, 0, 2, 'h', 'i', 0},
	} {
		t.Run(name, func(t *testing.T) {
			r, a := streamPair(t, relay, agent)
			withDeadline(t, r, a)
			if _, err := a.Raw().Write(raw); err != nil {
				t.Fatal(err)
			}
			a.Close()
			got, err := io.ReadAll(r)
			if string(got) != "hi" || err != io.ErrUnexpectedEOF {
				t.Fatalf("read %q, %v; want \"hi\", io.ErrUnexpectedEOF", got, err)
			}
		})
	}
}

func TestStreamBadFrame(t *testing.T) {
	relay, agent := sessionPair(t)
	for name, raw := range map[string][]byte{
		"unknown type":        {0, 0, 1, 'x', 9, 0, 0},
		"move with body":      {0, 0, 1, 'x', 2, 0, 1, 'y'},
		"EOF frame with body": {0, 0, 1, 'x', 1, 0, 1, 'y'},
	} {
		t.Run(name, func(t *testing.T) {
			r, a := streamPair(t, relay, agent)
			withDeadline(t, r, a)
			if _, err := a.Raw().Write(raw); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if string(got) != "x" || !errors.Is(err, mux.ErrBadFrame) {
				t.Fatalf("read %q, %v; want \"x\", ErrBadFrame", got, err)
			}
		})
	}
}

func TestStreamClose(t *testing.T) {
	r, a := oneStream(t)
	withDeadline(t, r, a)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if _, err := r.Write([]byte("x")); err == nil {
		t.Error("Write after Close succeeded")
	}
	if _, err := r.Read(make([]byte, 1)); err == nil || err == io.EOF {
		t.Errorf("Read after Close = %v, want an error other than EOF", err)
	}
	if _, err := a.Read(make([]byte, 1)); err != io.ErrUnexpectedEOF {
		t.Errorf("peer Read after Close = %v, want io.ErrUnexpectedEOF", err)
	}
}
