package coalesce

import (
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// WriteWouldWait reports whether a Write of n bytes might wait for the
// socket: the kernel takes a write at once while the memory queued on
// the socket stays under its send buffer, and SO_MEMINFO reads both in
// one system call. A chunk's records and the skbs they become take more
// memory than their bytes, so the check asks for twice n plus a page.
// Records in the buffer (held, or buffered) count as written: while
// WriteHeld holds any, the room measured when the first was held is what
// the buffer and n must fit in, and no system call is made. It says true
// when it cannot tell (a socket it cannot reach).
//
// The room measured is kept as a credit that every write to the socket
// spends (writeCharge), and the next creditAnswers questions that fit
// in it are answered without a system call: the kernel frees queued
// memory, it never takes more than was written, so the credit is at most
// the room there is. The relay asked once per chunk it forwarded, one of
// its 12 system calls per 64 B round trip.
//
// The relay asks before it writes a chunk on a session's receive loop,
// which must never wait (pipe.InlineFrameWriter).
func (c *Conn) WriteWouldWait(n int) bool {
	if !c.handshook.Load() {
		return true
	}
	u := c.under
	if u.held.Load() > 0 {
		return 2*(u.size.Load()+int64(n)) > u.room.Load()
	}
	need := 2 * (u.size.Load() + int64(n))
	if u.answers.Add(1) <= creditAnswers {
		if credit := u.credit.Load(); need <= credit {
			u.room.Store(credit)
			return false
		}
	}
	rc := c.rawConn()
	if rc == nil {
		return true
	}
	var info [unix.SK_MEMINFO_VARS]uint32
	var serr syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		size := uint32(unsafe.Sizeof(info))
		_, _, serr = unix.RawSyscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
	}); err != nil || serr != 0 {
		return true
	}
	roomMeasures.Add(1)
	queued, sndbuf := int64(info[unix.SK_MEMINFO_WMEM_QUEUED]), int64(info[unix.SK_MEMINFO_SNDBUF])
	room := sndbuf - queued - 4096
	u.room.Store(room)
	u.credit.Store(room)
	u.answers.Store(0)
	return need > room
}

// creditAnswers bounds how many answers one measured room gives: a send
// buffer the kernel shrinks under memory pressure is seen within that
// many chunks.
const creditAnswers = 64

// roomMeasures counts SO_MEMINFO reads, for tests.
var roomMeasures atomic.Uint64

// rawConn returns the socket's RawConn, made once: WriteWouldWait runs
// for every small chunk the relay forwards.
func (c *Conn) rawConn() syscall.RawConn {
	if c.under.rc != nil {
		return c.under.rc
	}
	if p := c.raw.Load(); p != nil {
		return *p
	}
	sc, ok := c.under.Conn.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	c.raw.Store(&rc)
	return rc
}
