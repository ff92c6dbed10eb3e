package coalesce

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// socketer wraps a TCP socket as a bookkeeping wrapper does (the relay's
// per-address cap), and says so.
type socketer struct{ net.Conn }

func (s socketer) Socket() *net.TCPConn { tc, _ := s.Conn.(*net.TCPConn); return tc }

// A Conn over a TCP socket, bare or behind a Socketer, reads and writes
// it with package rawio, and behaves as one over net.Conn does: every
// byte each way, the read deadline as a timeout, a closed Conn as
// net.ErrClosed, the peer's close as the end of the stream. Any other
// conn (one that counts its writes) is read and written through its own
// methods. WriteWouldWait reaches the socket behind a Socketer too.
func TestRawSocket(t *testing.T) {
	for _, tc := range []struct {
		name string
		wrap func(net.Conn) net.Conn
		raw  bool
	}{
		{"TCP socket", func(c net.Conn) net.Conn { return c }, true},
		{"Socketer", func(c net.Conn) net.Conn { return socketer{c} }, true},
		{"other conn", func(c net.Conn) net.Conn { return &countingConn{Conn: c} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, server := pairOver(t, tc.wrap)
			if got := client.under.rc != nil; got != tc.raw {
				t.Fatalf("raw socket I/O: %v, want %v", got, tc.raw)
			}
			if tc.raw && client.rawConn() == nil {
				t.Error("WriteWouldWait cannot reach the socket")
			}
			want := make([]byte, 3<<20+17)
			rand.Read(want)
			go func() {
				// The server echoes until the client's close_notify.
				io.Copy(server, server)
				server.Close()
			}()
			errc := make(chan error, 1)
			go func() {
				_, err := client.Write(want)
				errc <- err
			}()
			got := make([]byte, len(want))
			if _, err := io.ReadFull(client, got); err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatal("the bytes echoed differ from those written")
			}
			client.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			_, err := client.Read(got[:1])
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("read past the deadline: %v, want a net.Error timeout", err)
			}
		})
	}
}

// The end of the stream and a closed Conn read as they do over net.Conn.
func TestRawSocketEnds(t *testing.T) {
	client, server := pairOver(t, func(c net.Conn) net.Conn { return c })
	if client.under.rc == nil {
		t.Fatal("not on raw socket I/O")
	}
	go func() {
		server.Write([]byte("bye"))
		server.Close() // close_notify, then the socket's FIN
	}()
	got, err := io.ReadAll(client)
	if err != nil || string(got) != "bye" {
		t.Fatalf("read %q, %v; want \"bye\" and the end of the stream", got, err)
	}
	// Below TLS: the socket's own end of stream.
	if n, err := client.under.read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Fatalf("socket read after the peer closed: %d, %v; want 0, io.EOF", n, err)
	}
	client.Close()
	if _, err := client.under.read(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read of a closed socket: %v, want net.ErrClosed", err)
	}
	if _, err := client.under.write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write to a closed socket: %v, want net.ErrClosed", err)
	}
}
