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
// Under the race detector the calls go through package syscall, whose
// annotations tell the detector that bytes written to a file descriptor
// happen before they are read back.
package rawio
