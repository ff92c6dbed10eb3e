package pipe_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanodems/connector/internal/pipe"
	"github.com/nanodems/connector/internal/testnet"
)

// joined runs Join between the inner ends of two loopback TCP pairs and
// returns the outer ends, client and target, and Join's result. Cleanup
// fails the test if Join has not returned.
func joined(t *testing.T, wrapTarget func(net.Conn) net.Conn, up, down *atomic.Uint64) (client, target *net.TCPConn, result <-chan error) {
	client, a := testnet.TCPPair(t)
	b, target := testnet.TCPPair(t)
	withDeadline(t, client, target)
	var bc net.Conn = b
	if wrapTarget != nil {
		bc = wrapTarget(b)
	}
	done, finished := make(chan error, 1), make(chan struct{})
	go func() {
		done <- pipe.Join(a, bc, up, down)
		close(finished)
	}()
	t.Cleanup(func() {
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Error("Join did not return")
		}
	})
	return client, target, done
}

// Join must carry half-close both ways: whichever end finishes sending
// first, the other still answers in full, and both directions are counted.
func TestJoinHalfClose(t *testing.T) {
	request, answer := randomBytes(300<<10), randomBytes(1<<20)
	for _, targetFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("targetFirst=%v", targetFirst), func(t *testing.T) {
			var up, down atomic.Uint64
			client, target, piped := joined(t, nil, &up, &down)
			served := make(chan error, 1)
			go func() { served <- serveHalfClosed(target, targetFirst, request, answer) }()
			if err := clientHalfClosed(client, targetFirst, request, answer); err != nil {
				t.Fatal(err)
			}
			if err := <-served; err != nil {
				t.Fatal(err)
			}
			if err := <-piped; err != nil {
				t.Fatalf("Join = %v", err)
			}
			if up.Load() != uint64(len(request)) || down.Load() != uint64(len(answer)) {
				t.Errorf("counted %d up, %d down; want %d, %d", up.Load(), down.Load(), len(request), len(answer))
			}
		})
	}
}

// serveHalfClosed is the target: either it answers after reading the whole
// request (an HTTP/1.0 server), or it sends everything first and then
// reads (a banner, then a log upload).
func serveHalfClosed(target *net.TCPConn, targetFirst bool, request, answer []byte) error {
	defer target.Close()
	var got []byte
	var err error
	if !targetFirst {
		got, err = io.ReadAll(target)
	}
	if err == nil {
		_, err = target.Write(answer)
	}
	if err == nil {
		err = target.CloseWrite()
	}
	if err == nil && targetFirst {
		got, err = io.ReadAll(target)
	}
	if err == nil && !bytes.Equal(got, request) {
		err = fmt.Errorf("target read %d bytes, want %d", len(got), len(request))
	}
	return err
}

// clientHalfClosed is the client of serveHalfClosed's target.
func clientHalfClosed(client *net.TCPConn, targetFirst bool, request, answer []byte) error {
	var got []byte
	var err error
	if targetFirst {
		if got, err = io.ReadAll(client); err != nil {
			return err
		}
	}
	if _, err := client.Write(request); err != nil {
		return err
	}
	if err := client.CloseWrite(); err != nil {
		return err
	}
	if !targetFirst {
		if got, err = io.ReadAll(client); err != nil {
			return err
		}
	}
	if !bytes.Equal(got, answer) {
		return fmt.Errorf("client read %d bytes, want %d", len(got), len(answer))
	}
	return nil
}

// abortRecorder is a connection that records the first reason Join
// aborts it with.
type abortRecorder struct {
	net.Conn
	reason atomic.Pointer[error]
}

func (c *abortRecorder) Abort(reason error) error {
	c.reason.CompareAndSwap(nil, &reason)
	return c.Conn.Close()
}

// When the client's connection is reset mid-request, Join must return the
// cause, abort the other side (an Aborter gets Abort with the cause) and
// so end the target's connection rather than wait for the target.
func TestJoinCut(t *testing.T) {
	var rec *abortRecorder
	client, target, piped := joined(t, func(c net.Conn) net.Conn {
		rec = &abortRecorder{Conn: c}
		return rec
	}, nil, nil)
	if _, err := client.Write([]byte("partial req")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, err := io.ReadAtLeast(target, buf, len("partial req")); err != nil || string(buf[:n]) != "partial req" {
		t.Fatalf("target read %q, %v", buf[:n], err)
	}
	client.SetLinger(0) // a reset, not an end: the request is cut
	client.Close()
	var err error
	select {
	case err = <-piped:
	case <-time.After(10 * time.Second):
		t.Fatal("Join still running after the client was reset")
	}
	if err == nil {
		t.Error("Join = nil after a reset, want the cause")
	}
	if r := rec.reason.Load(); r == nil || *r == nil {
		t.Error("the target's side was closed, not aborted")
	} else if !errors.Is(err, *r) {
		t.Errorf("aborted with %v, Join returned %v", *r, err)
	}
	if n, err := target.Read(buf); err != io.EOF {
		t.Fatalf("target read %d more bytes, %v from a cut tunnel; want EOF (the recorder closes)", n, err)
	}
}
