//go:build linux && !race

package rawio

import (
	"syscall"
	"unsafe"
)

// Read is read(2) on fd, retried on EINTR. With bulk (the caller's last
// read of this socket brought more than MaxRaw bytes) it goes through
// package syscall.
func Read(fd int, p []byte, bulk bool) (int, error) {
	if bulk {
		return syscallRead(fd, p)
	}
	return raw(syscall.SYS_READ, fd, p)
}

// Write is write(2) on fd, retried on EINTR; it may write less than p.
// A write of more than MaxRaw bytes goes through package syscall.
func Write(fd int, p []byte) (int, error) {
	if len(p) > MaxRaw {
		return syscallWrite(fd, p)
	}
	return raw(syscall.SYS_WRITE, fd, p)
}

// raw makes system call trap (read or write) on fd and p without
// entering the runtime's system-call state, retried on EINTR.
func raw(trap uintptr, fd int, p []byte) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	for {
		n, _, e := syscall.RawSyscall(trap, uintptr(fd), uintptr(ptr), uintptr(len(p)))
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(n), nil
	}
}
