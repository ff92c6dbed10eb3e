package cli

import (
	"context"
	"io"

	"github.com/nanodems/connector/internal/pipe"
)

// Stdio joins in and out to the device port behind handle, like nc: the
// end of in half-closes the tunnel, and Stdio returns when the device has
// finished answering.
func Stdio(ctx context.Context, r Relay, handle string, in io.Reader, out io.Writer) error {
	c, err := DialTunnel(ctx, r, handle)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	go pipe.Copy(c, in, nil) // ends with CloseWrite
	_, err = io.Copy(out, c)
	return err
}
