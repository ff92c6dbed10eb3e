//go:build !linux

package pipe

import "syscall"

// waitReadable returns no wait where we have not written a peek: Copy then
// holds a buffer while it reads, as plain io.Copy does.
func waitReadable(syscall.RawConn) func() error { return nil }
