//go:build !linux

package pipe

import "syscall"

// rawReader returns no poller read where we have not written one: Copy
// then holds a buffer while it reads, as plain io.Copy does.
func rawReader(syscall.RawConn) func(header, size int) (*[]byte, int, error) { return nil }

// socketWriter has no non-blocking write where we have not written one:
// a copy then writes every chunk on its pump's goroutine.
type socketWriter struct{}

func newSocketWriter(syscall.RawConn) *socketWriter { return nil }

func (*socketWriter) write([]byte) (int, error) { return 0, nil }
