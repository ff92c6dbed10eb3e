package mux_test

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/nanodems/connector/mux"
)

// A tunnel moves to a dedicated connection while bytes flow both ways:
// every byte arrives once, in order, whichever side attaches first.
func TestStreamMoveToDedicated(t *testing.T) {
	for _, order := range []string{"relay first", "agent first"} {
		t.Run(order, func(t *testing.T) {
			relay, agent := sessionPair(t)
			r, a := streamPair(t, relay, agent)
			withDeadline(t, r, a)
			const n = 4 << 20
			payload := func(seed uint64) []byte {
				b := make([]byte, n)
				rng := rand.New(rand.NewPCG(seed, seed))
				for i := range b {
					b[i] = byte(rng.Uint32())
				}
				return b
			}
			up, down := payload(1), payload(2)
			gotDown, gotUp := make(chan []byte, 1), make(chan []byte, 1)
			go func() { b, _ := io.ReadAll(a); gotDown <- b }()
			go func() { b, _ := io.ReadAll(r); gotUp <- b }()
			write := func(s *mux.Stream, b []byte) {
				for len(b) > 0 {
					k := min(len(b), 1+rand.IntN(100<<10))
					if _, err := s.Write(b[:k]); err != nil {
						t.Error(err)
						return
					}
					b = b[k:]
				}
				s.CloseWrite()
			}
			go write(r, down)
			go write(a, up)

			// The dedicated connection: real TCP on loopback.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			dAgent, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			dRelay, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond) // mid-transfer
			first, second := r, a
			fd, sd := dRelay, dAgent
			if order == "agent first" {
				first, second, fd, sd = a, r, dAgent, dRelay
			}
			if err := first.Attach(fd); err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond)
			if err := second.Attach(sd); err != nil {
				t.Fatal(err)
			}
			if b := <-gotUp; !bytes.Equal(b, up) {
				t.Fatalf("agent→relay: %d bytes, sha %x; want %d, %x", len(b), sha256.Sum256(b), n, sha256.Sum256(up))
			}
			if b := <-gotDown; !bytes.Equal(b, down) {
				t.Fatalf("relay→agent: %d bytes; want %d", len(b), n)
			}
			if !r.Dedicated() || !a.Dedicated() {
				t.Fatal("streams do not report the move")
			}
		})
	}
}
