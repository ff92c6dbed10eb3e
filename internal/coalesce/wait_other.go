//go:build !linux

package coalesce

// WriteWouldWait says true where the socket's queue cannot be read: the
// relay then writes every chunk on a goroutine that may wait.
func (c *Conn) WriteWouldWait(n int) bool { return true }
