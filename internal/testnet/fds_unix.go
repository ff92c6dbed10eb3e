//go:build unix

package testnet

import (
	"errors"
	"os"
	"syscall"
	"testing"
)

// ExhaustFDs lowers the soft open-file limit to the descriptors in use and
// fills every free number below it, so that the next accept or socket
// fails with EMFILE. The returned function gives everything back. The
// test calling it must not run in parallel with others.
func ExhaustFDs(tb testing.TB) (restore func()) {
	tb.Helper()
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		tb.Fatal(err)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Skipf("no /proc/self/fd: %v", err)
	}
	lim := syscall.Rlimit{Cur: uint64(len(ents)) + 8, Max: orig.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		tb.Fatal(err)
	}
	var fill []int
	for {
		fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) {
				tb.Fatalf("filling descriptors: %v", err)
			}
			break
		}
		fill = append(fill, fd)
	}
	return func() {
		for _, fd := range fill {
			syscall.Close(fd)
		}
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig)
	}
}
