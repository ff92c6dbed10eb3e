// Package rawio reads and writes non-blocking sockets with system calls
// the Go runtime is not told about.
//
// Why: every read or write through net.Conn (and syscall.Read, Write)
// enters the runtime's system-call state, and the first such call after
// the whole process idled wakes the runtime's monitor thread (sysmon) from
// its deep sleep: a futex wake on the caller's path, then a context switch
// to sysmon, which polls every 20 µs (nanosleep) until the process idles
// again and goes back to sleep on a futex. A process that forwards small
// messages idles between them, so it paid that for nearly every message:
// in a 64 B round trip through relay, agent and nanodems-tunnel, 3 of each
// process's 17 system calls were futex and 2 were nanosleep, all sysmon's
// (docs/perf-peers-changes.md). A read or write of a non-blocking socket
// returns at once, so the runtime loses nothing by not knowing: there is
// no P to hand off while it runs.
//
// Bulk is the exception. On loopback a large write runs the receiver's
// TCP input too and can take a hundred microseconds, and a thread the
// kernel preempts inside a raw call keeps its P (the runtime's right to
// run Go code) all that time, where the runtime would hand the P to
// another thread after 20 µs. With every read and write raw, a 64 B
// round trip beside an unpaced bulk tunnel on the WebSocket path took
// 9.5 and 15.7 ms at p50 against 2.2 – 2.8 ms; with large writes through
// package syscall, 4.4 and 4.8 ms. So writes of more than MaxRaw bytes,
// and reads of a socket whose last read brought more than MaxRaw, go
// through package syscall; messages stay raw.
//
// Under the race detector the calls go through package syscall, whose
// annotations tell the detector that bytes written to a file descriptor
// happen before they are read back.
package rawio

// MaxRaw is the largest write made raw, and the largest read after which
// the next is: a TLS record and its header.
const MaxRaw = 16<<10 + 512
