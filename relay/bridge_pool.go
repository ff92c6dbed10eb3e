package relay

import (
	"math/bits"
	"sync"
)

// bridgePool is the bridge's gRPC buffer pool (both relays, both
// directions, and the codec's outgoing frames): one sync.Pool per power
// of two from 256 B to 1 MiB, and no zeroing. gRPC's default pool clears
// every buffer it hands out, to its full class, and its classes jump from
// 32 KiB to 1 MiB: a 64 KiB tunnel write was a 1 MiB buffer cleared, and
// clearing was 24% of the calling relay's CPU during a bulk tunnel
// (docs/perf-ha.md). Nothing here needs zeroed buffers: the codec fills
// the whole of what it asks for, and gRPC reads whole HTTP/2 frames into
// the buffers it asks for.
type bridgePool struct {
	classes [bridgePoolMax - bridgePoolMin + 1]sync.Pool
}

const (
	bridgePoolMin = 8  // 256 B; smaller buffers are not worth pooling
	bridgePoolMax = 20 // 1 MiB; larger ones are allocated (bridgeChunk is 256 KiB)
)

var bridgeBuffers = &bridgePool{}

// class is the exponent of the smallest power of two that holds n.
func bridgeClass(n int) int {
	if n <= 1<<bridgePoolMin {
		return bridgePoolMin
	}
	return bits.Len(uint(n - 1))
}

func (p *bridgePool) Get(n int) *[]byte {
	e := bridgeClass(n)
	if e > bridgePoolMax {
		b := make([]byte, n)
		return &b
	}
	if b, ok := p.classes[e-bridgePoolMin].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<e)
	return &b
}

// Put keeps buffers whose capacity is exactly one of the classes: those
// it handed out.
func (p *bridgePool) Put(b *[]byte) {
	c := cap(*b)
	e := bridgeClass(c)
	if c != 1<<e || e < bridgePoolMin || e > bridgePoolMax {
		return
	}
	p.classes[e-bridgePoolMin].Put(b)
}
