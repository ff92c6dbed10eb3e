//go:build unix && (!linux || race)

package rawio

// Read is syscall.Read on fd, retried on EINTR, bulk or not.
func Read(fd int, p []byte, bulk bool) (int, error) { return syscallRead(fd, p) }

// Write is syscall.Write on fd, retried on EINTR; it may write less
// than p.
func Write(fd int, p []byte) (int, error) { return syscallWrite(fd, p) }
