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
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(ptr), uintptr(len(p)))
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(n), nil
	}
}

// Write is write(2) on fd, retried on EINTR; it may write less than p.
// A write of more than MaxRaw bytes goes through package syscall.
func Write(fd int, p []byte) (int, error) {
	if len(p) > MaxRaw {
		return syscallWrite(fd, p)
	}
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(ptr), uintptr(len(p)))
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(n), nil
	}
}

func syscallWrite(fd int, p []byte) (int, error) {
	for {
		n, err := syscall.Write(fd, p)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		return n, nil
	}
}

func syscallRead(fd int, p []byte) (int, error) {
	for {
		n, err := syscall.Read(fd, p)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		return n, nil
	}
}
