//go:build unix

package rawio

import "syscall"

// syscallRead is syscall.Read on fd, retried on EINTR.
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

// syscallWrite is syscall.Write on fd, retried on EINTR; it may write
// less than p.
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
