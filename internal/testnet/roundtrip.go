package testnet

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
)

// RoundTrip writes n random bytes through c to an echo target while
// reading the echo, half-closes c after the last byte, and checks that
// what came back is what was sent (length and SHA-256). c must be able to
// half-close (CloseWrite), as every tunnel end is.
func RoundTrip(c net.Conn, n int64) error {
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok {
		return fmt.Errorf("%T cannot half-close", c)
	}
	sent := sha256.New()
	errc := make(chan error, 1)
	go func() {
		_, err := io.Copy(c, io.TeeReader(io.LimitReader(rand.Reader, n), sent))
		if err == nil {
			err = cw.CloseWrite()
		}
		errc <- err
	}()
	got := sha256.New()
	m, err := io.Copy(got, c)
	if werr := <-errc; werr != nil {
		return fmt.Errorf("write: %w", werr)
	}
	if err != nil {
		return fmt.Errorf("read after %d bytes: %w", m, err)
	}
	if m != n {
		return fmt.Errorf("echoed %d bytes, sent %d", m, n)
	}
	if !bytes.Equal(sent.Sum(nil), got.Sum(nil)) {
		return errors.New("sha256 of echoed bytes differs from sent bytes")
	}
	return nil
}
