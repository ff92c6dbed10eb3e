//go:build unix && (!linux || race)

package rawio

import "syscall"

// Read is syscall.Read on fd, retried on EINTR.
func Read(fd int, p []byte, bulk bool) (int, error) {
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

// Write is syscall.Write on fd, retried on EINTR; it may write less
// than p.
func Write(fd int, p []byte) (int, error) {
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
