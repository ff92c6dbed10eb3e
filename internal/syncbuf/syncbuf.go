// Package syncbuf provides a bytes.Buffer that several goroutines may
// write and read at once: where tests collect a process's or a server's
// log (written by its goroutines) and read it for assertions and failure
// messages.
package syncbuf

import (
	"bytes"
	"sync"
)

// Buffer is a bytes.Buffer behind a mutex. The zero value is empty and
// ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String is everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Tail is the last n bytes written (all of them if fewer).
func (s *Buffer) Tail(n int) string {
	out := s.String()
	return out[max(0, len(out)-n):]
}
