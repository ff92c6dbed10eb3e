//go:build !linux

package coalesce

import (
	"net"
	"syscall"
)

func rawSocket(net.Conn) syscall.RawConn { return nil }

func (u *under) read(p []byte) (int, error)  { return u.Conn.Read(p) }
func (u *under) write(p []byte) (int, error) { return u.Conn.Write(p) }
