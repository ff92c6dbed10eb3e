package pipe

import "sync"

// BufSize is the copy buffer of every tunnel direction. 64 KiB matches
// smux's largest frame, so one Read from a stream fills at most one frame
// and one Write to a stream makes one frame (docs/perf.md has the sweep).
const BufSize = 64 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, BufSize); return &b }}

// GetBuf returns a pooled copy buffer of BufSize bytes; PutBuf returns it.
func GetBuf() *[]byte  { return bufPool.Get().(*[]byte) }
func PutBuf(b *[]byte) { bufPool.Put(b) }
