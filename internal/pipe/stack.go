package pipe

// frameWriteStack is the stack a goroutine reserves before it writes its
// first frame: a chunk written through a mux stream to TLS (smux, the
// coalescing connection, crypto/tls, AES-GCM) runs 4 – 8 KiB deep.
//
// Bursts and pumps start on fresh goroutines, whose stacks start at
// 2 KiB, so every chunk they wrote grew its goroutine's stack twice deep
// in that path (2 → 4 KiB in smux's select, 4 → 8 KiB in the AES-GCM
// assembly), and each growth walks and adjusts every frame on the stack:
// runtime.newstack was 12.5 % of the agent's and nanodems-tunnel's CPU
// samples with 1,000 connections each echoing 64 B ten times a second.
// Reserved where the stack is three frames deep, the growth happens once
// and adjusts only those (docs/perf-peers-changes.md).
const frameWriteStack = 5 << 10

// stackIndex is not a constant, so that the compiler keeps
// ReserveStack's array on its stack.
var stackIndex = 0

// ReserveStack grows the calling goroutine's stack, in one step, to room
// for frameWriteStack bytes below the caller's frame. A goroutine that
// will dial or write a frame calls it first, while its stack is shallow:
// the agent's tunnel opener grew twice on its way through net.Dialer
// and smux, and runtime.newstack was 8 % of the agent's CPU samples
// during opens, 5 % with the one growth here.
//
//go:noinline
func ReserveStack() byte {
	var b [frameWriteStack]byte
	b[stackIndex] = 1
	return b[len(b)-1-stackIndex]
}
