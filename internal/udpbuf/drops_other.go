//go:build !linux

package udpbuf

import (
	"errors"
	"net"
)

func countDrops(*net.UDPConn) error { return errors.New("udpbuf: drop counting needs Linux") }

func parseDrops([]byte) (uint32, bool) { return 0, false }
