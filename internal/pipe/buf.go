package pipe

import "sync"

// BufSize is the largest copy buffer of a tunnel direction. 64 KiB matches
// smux's largest frame, so one Read from a stream fills at most one frame
// and one Write to a stream makes one frame (docs/perf.md has the sweep).
const BufSize = 64 << 10

// SmallBufSize is the copy buffer of a direction that is not moving bulk
// data. A chunk holds its buffer from Read until the destination has taken
// it, and under load that is most connections at once: 1,000 connections
// echoing 64 B every 100 ms held 60 MiB of 64 KiB buffers in the relay
// and 60 MiB in the agent (docs/perf-peers.md, memory per connection).
// 4 KiB holds any small message in one read; a read that fills it moves
// the next one to BufSize.
const SmallBufSize = 4 << 10

var (
	bufPool      = sync.Pool{New: func() any { b := make([]byte, BufSize); return &b }}
	smallBufPool = sync.Pool{New: func() any { b := make([]byte, SmallBufSize); return &b }}
)

// GetBuf returns a pooled copy buffer of BufSize bytes; PutBuf returns it
// (or one from GetBufFor).
func GetBuf() *[]byte { return bufPool.Get().(*[]byte) }

// GetBufFor returns a pooled buffer of SmallBufSize bytes if n bytes fit
// in it, else one of BufSize.
func GetBufFor(n int) *[]byte {
	if n <= SmallBufSize {
		return smallBufPool.Get().(*[]byte)
	}
	return GetBuf()
}

// PutBuf returns a buffer from GetBuf or GetBufFor to its pool.
func PutBuf(b *[]byte) {
	if cap(*b) == SmallBufSize {
		smallBufPool.Put(b)
		return
	}
	bufPool.Put(b)
}
