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
			time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond) // deliberate: attach at a random point mid-transfer
			first, second := r, a
			fd, sd := dRelay, dAgent
			if order == "agent first" {
				first, second, fd, sd = a, r, dAgent, dRelay
			}
			if err := first.Attach(fd); err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond) // deliberate: the first side moves alone for a while
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

// On a dedicated connection, Read hands over a whole frame's payload (as
// the shared smux stream does), not one TLS record or TCP segment of it:
// a moved tunnel keeps forwarding 64 KiB chunks.
func TestStreamDedicatedReadsWholeFrames(t *testing.T) {
	relay, agent := sessionPair(t)
	r, a := streamPair(t, relay, agent)
	withDeadline(t, r, a)
	pr, pa := net.Pipe() // one Write arrives in as many Reads as the reader asks for
	defer pr.Close()
	defer pa.Close()
	if err := r.Attach(pr); err != nil {
		t.Fatal(err)
	}
	if err := a.Attach(recordReads{pa}); err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte{7}, mux.MaxPayload)
	go func() {
		for range 4 {
			r.Write(chunk)
		}
		r.CloseWrite()
	}()
	buf := make([]byte, 64<<10)
	for i := range 4 {
		n, err := io.ReadFull(&onceReader{a}, buf[:mux.MaxPayload])
		if err != nil || n != mux.MaxPayload {
			t.Fatalf("frame %d: one Read gave %d bytes (%v), want the whole %d", i, n, err, mux.MaxPayload)
		}
	}
	if _, err := a.Read(buf); err != io.EOF {
		t.Fatalf("after the frames: %v, want EOF", err)
	}
}

// recordReads returns at most 16 KiB per Read, as a TLS connection
// returns one record.
type recordReads struct{ net.Conn }

func (c recordReads) Read(p []byte) (int, error) {
	return c.Conn.Read(p[:min(len(p), 16<<10)])
}

// onceReader allows a single Read: io.ReadFull through it fails unless
// that Read returns everything asked for.
type onceReader struct{ r io.Reader }

func (o *onceReader) Read(p []byte) (int, error) {
	if o.r == nil {
		return 0, io.ErrNoProgress
	}
	r := o.r
	o.r = nil
	return r.Read(p)
}
