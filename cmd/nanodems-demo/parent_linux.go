package main

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// exitWithParent asks the kernel for SIGTERM when the parent dies. Under
// `go run`, killing the go command (as an IDE's stop button does) would
// otherwise leave the demo running with its ports taken.
func exitWithParent() {
	parent := os.Getppid()
	unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0, 0, 0)
	if os.Getppid() != parent { // the parent died before the request
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
	}
}
