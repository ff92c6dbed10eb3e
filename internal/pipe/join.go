package pipe

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
)

// Aborter is a connection that can tell its peer the stream was cut rather
// than finished (a WebSocket's close status). Join aborts instead of
// closing when a direction fails, so a dropped agent session reaches the
// operator as an error, not as a clean EOF.
type Aborter interface {
	Abort(reason error) error
}

// abort ends c so that its peer sees a cut, not an end: a WebSocket gets
// an error status, a TCP connection a reset (a target that reads its
// request to EOF must not act on a truncated one).
func abort(c net.Conn, err error) {
	switch c := c.(type) {
	case Aborter:
		c.Abort(err)
	case *net.TCPConn:
		c.SetLinger(0)
		c.Close()
	default:
		c.Close()
	}
}

// Join joins a and b until both directions have ended, preserving
// half-close: when a's peer stops sending, b sees EOF but may still answer.
// aToB and bToA count the bytes of each direction (either may be nil).
// Join closes both connections before it returns.
func Join(a, b net.Conn, aToB, bToA *atomic.Uint64) error {
	errc := make(chan error, 1)
	go func() {
		_, err := Copy(b, a, aToB)
		if err != nil {
			// A broken direction ends the tunnel: unblock the other copy.
			abort(a, err)
			abort(b, err)
		}
		errc <- err
	}()
	_, err := Copy(a, b, bToA)
	if err != nil {
		abort(a, err)
		abort(b, err)
	}
	// Once one direction fails, Join's own abort makes the other fail with
	// "use of closed connection": drop those so the cause is returned.
	err = errors.Join(cause(err), cause(<-errc))
	a.Close()
	b.Close()
	return err
}

func cause(err error) error {
	if err == nil || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe) {
		return nil
	}
	return err
}
