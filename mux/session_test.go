package mux_test

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
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
