//go:build !linux

package mux

import "syscall"

// waitReadable is a no-op where we have not written a peek: Copy then
// holds a buffer while it waits, as plain io.Copy does.
func waitReadable(syscall.RawConn) error { return nil }
