package cli

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nanodems/connector/internal/pipe"
	"github.com/nanodems/connector/mux"
	"github.com/xtaci/smux"
)

// earlyStream is a listener connection's stream opened without waiting for
// the relay's status: the client's first bytes leave with the open instead
// of a full CLI->relay->agent->relay->CLI round trip later. The status is
// read before the first byte of the answer; a refusal fails that read (and
// a write that meets the closed stream), so pipe.Join resets the local
// connection as a synchronous open did. The relay discards the early bytes
// of a refused tunnel with the stream.
type earlyStream struct {
	*mux.Stream
	raw  *smux.Stream
	t    *Tunnel
	ap   netip.AddrPort
	once sync.Once
	err  error
	ok   atomic.Bool // the status was read and said OK
}

// await reads the relay's status once; every caller gets its result.
func (e *earlyStream) await() error {
	e.once.Do(func() {
		e.raw.SetReadDeadline(time.Now().Add(dialTimeout))
		err := mux.ReadStatus(e.raw)
		e.raw.SetReadDeadline(time.Time{})
		if err == nil {
			e.ok.Store(true)
			return
		}
		var se *mux.StatusError
		if errors.As(err, &se) {
			err = se
		}
		e.err = fmt.Errorf("%s: %w", e.ap, err)
		e.t.logDialError(e.ap, e.err)
	})
	return e.err
}

func (e *earlyStream) Read(p []byte) (int, error) {
	if err := e.await(); err != nil {
		return 0, err
	}
	return e.Stream.Read(p)
}

// TryRead takes nothing before the status is read: the status is Read's
// to wait for, on the copy's goroutine (see pipe.InlineSource).
func (e *earlyStream) TryRead(p []byte) (int, error) {
	if !e.ok.Load() {
		return 0, pipe.ErrWouldBlock
	}
	return e.Stream.TryRead(p)
}

// TryWriteFrame sends nothing before the status is read, so that a
// refusal reaches WriteFrame's caller with its reason.
func (e *earlyStream) TryWriteFrame(b []byte, from pipe.InlineSource) (bool, error) {
	if !e.ok.Load() {
		return false, nil
	}
	return e.Stream.TryWriteFrame(b, from)
}

func (e *earlyStream) WaitRead() error {
	if err := e.await(); err != nil {
		return err
	}
	return e.Stream.WaitRead()
}

// Write and WriteFrame report the status's reason, not the closed stream,
// when the relay refused the tunnel while early bytes were on their way.
func (e *earlyStream) Write(p []byte) (int, error) {
	n, err := e.Stream.Write(p)
	if err != nil {
		if serr := e.await(); serr != nil {
			return n, serr
		}
	}
	return n, err
}

func (e *earlyStream) WriteFrame(b []byte) error {
	err := e.Stream.WriteFrame(b)
	if err != nil {
		if serr := e.await(); serr != nil {
			return serr
		}
	}
	return err
}
