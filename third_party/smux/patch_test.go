package smux

// Tests of the nanodems patches (PATCHES.md).

import (
	"bytes"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

func patchPair(t *testing.T) (*Session, *Session, *countingConn) {
	t.Helper()
	return pairCounting(t, false)
}

// pairCounting returns a client and a server session over loopback TCP and
// a write counter on the client's connection, or, with serverSide, on the
// server's (then the first session returned is the server).
func pairCounting(t *testing.T, serverSide bool) (*Session, *Session, *countingConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() { c, _ := ln.Accept(); acc <- c }()
	c1, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c2 := <-acc
	cfg := DefaultConfig()
	cfg.Version = 2
	cfg.MaxStreamBuffer = 1 << 20 // as the connector's mux.Config: larger than the initial window
	if serverSide {
		cc := &countingConn{Conn: c2}
		cli, err := Client(c1, cfg)
		if err != nil {
			t.Fatal(err)
		}
		srv, err := Server(cc, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.Close(); srv.Close() })
		return srv, cli, cc
	}
	cc := &countingConn{Conn: c1}
	cli, err := Client(cc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Server(c2, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close(); srv.Close() })
	return cli, srv, cc
}

// A direct write is one Write to the connection, and so is an open with
// its first bytes.
func TestPatchDirectWrites(t *testing.T) {
	cli, srv, cc := patchPair(t)
	n0 := cc.writes.Load()
	st, err := cli.OpenStreamWith([]byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if n := cc.writes.Load() - n0; n != 1 {
		t.Fatalf("OpenStreamWith made %d writes, want 1", n)
	}
	n0 = cc.writes.Load()
	if _, err := st.Write([]byte(" world")); err != nil {
		t.Fatal(err)
	}
	if n := cc.writes.Load() - n0; n != 1 {
		t.Fatalf("a small Write made %d writes, want 1", n)
	}
	peer, err := srv.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 11)
	if _, err := io.ReadFull(peer, b); err != nil || string(b) != "hello world" {
		t.Fatalf("peer read %q, %v", b, err)
	}
}

// First bytes larger than a frame are written after the SYN as any data.
func TestPatchOpenStreamWithLarge(t *testing.T) {
	cli, srv, _ := patchPair(t)
	first := bytes.Repeat([]byte("0123456789abcdef"), 40000) // 640,000 bytes: many frames, past the initial window
	done := make(chan []byte, 1)
	go func() {
		peer, err := srv.AcceptStream()
		if err != nil {
			done <- nil
			return
		}
		peer.SetReadDeadline(time.Now().Add(10 * time.Second))
		b := make([]byte, len(first))
		io.ReadFull(peer, b)
		done <- b
	}()
	st, err := cli.OpenStreamWith(first)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got := <-done; !bytes.Equal(got, first) {
		t.Fatal("the peer did not read the first bytes whole")
	}
}

// While the connection is busy, writes queue and leave in batches (many
// streams writing at once), and every stream's bytes arrive in order.
func TestPatchBatchedWrites(t *testing.T) {
	cli, srv, _ := patchPair(t)
	const streams, frames = 32, 200
	var wg sync.WaitGroup
	got := make(chan error, streams)
	go func() {
		for range streams {
			peer, err := srv.AcceptStream()
			if err != nil {
				return
			}
			go func() {
				peer.SetReadDeadline(time.Now().Add(20 * time.Second))
				var want, b [100]byte
				for i := range frames {
					for j := range want {
						want[j] = byte(i + j)
					}
					if _, err := io.ReadFull(peer, b[:]); err != nil || b != want {
						got <- io.ErrUnexpectedEOF
						return
					}
				}
				got <- nil
			}()
		}
	}()
	for range streams {
		st, err := cli.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b [100]byte
			for i := range frames {
				for j := range b {
					b[j] = byte(i + j)
				}
				if _, err := st.Write(b[:]); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for range streams {
		if err := <-got; err != nil {
			t.Fatal("a stream's bytes arrived out of order or short")
		}
	}
}

// A peer that answers the first bytes at once finds the stream: the
// opener registers it before the bytes leave. (Registered after, as
// upstream does for a bare SYN, the answer raced the registration and was
// dropped now and then.)
func TestPatchOpenAnsweredAtOnce(t *testing.T) {
	cli, srv, _ := patchPair(t)
	go func() {
		for {
			peer, err := srv.AcceptStream()
			if err != nil {
				return
			}
			go func() {
				defer peer.Close()
				b := make([]byte, 8)
				if _, err := io.ReadFull(peer, b); err == nil {
					peer.Write(b)
				}
			}()
		}
	}()
	for i := range 2000 {
		st, err := cli.OpenStreamWith([]byte("12345678"))
		if err != nil {
			t.Fatal(err)
		}
		st.SetReadDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 8)
		if _, err := io.ReadFull(st, b); err != nil || string(b) != "12345678" {
			t.Fatalf("open %d: answer %q, %v", i, b, err)
		}
		st.Close()
	}
}

// The first read's window update goes out with the stream's next write:
// reading the first bytes writes nothing, the answer is one write.
func TestPatchOwedUpdateRidesWithWrite(t *testing.T) {
	srv, cli, sc := pairCounting(t, true) // sc counts the accepting side's writes
	go func() {
		st, err := cli.OpenStreamWith([]byte("ping"))
		if err != nil {
			return
		}
		defer st.Close()
		st.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.Copy(io.Discard, st)
	}()
	peer, err := srv.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	n0 := sc.writes.Load()
	b := make([]byte, 4)
	if _, err := io.ReadFull(peer, b); err != nil {
		t.Fatal(err)
	}
	if n := sc.writes.Load() - n0; n != 0 {
		t.Fatalf("the first read made %d writes, want 0 (its window update is owed)", n)
	}
	if _, err := peer.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if n := sc.writes.Load() - n0; n != 1 {
		t.Fatalf("update and answer made %d writes, want 1", n)
	}
}

// A reader that never writes still raises the peer's window in time: 8 MiB
// flow one way through a stream whose reader only reads.
func TestPatchOwedUpdateNoStall(t *testing.T) {
	cli, srv, _ := patchPair(t)
	data := bytes.Repeat([]byte("nanodems"), 1<<20)
	go func() {
		st, err := cli.OpenStreamWith(data[:8])
		if err != nil {
			return
		}
		st.Write(data[8:])
		st.Close()
	}()
	peer, err := srv.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(data))
	if _, err := io.ReadFull(peer, got); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %v: the stream stalled or corrupted", err)
	}
}

// WriteClose sends the last bytes and the FIN in one write; the peer reads
// the bytes, then EOF. Bytes larger than a frame go as Write then Close.
func TestPatchWriteClose(t *testing.T) {
	cli, srv, cc := patchPair(t)
	for _, size := range []int{3, 200000} {
		st, err := cli.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		peer, err := srv.AcceptStream()
		if err != nil {
			t.Fatal(err)
		}
		peer.SetReadDeadline(time.Now().Add(5 * time.Second))
		last := bytes.Repeat([]byte{7}, size)
		n0 := cc.writes.Load()
		done := make(chan []byte, 1)
		go func() { b, _ := io.ReadAll(peer); done <- b }()
		if err := st.WriteClose(last); err != nil {
			t.Fatal(err)
		}
		if n := cc.writes.Load() - n0; size == 3 && n != 1 {
			t.Fatalf("WriteClose of %d bytes made %d writes, want 1", size, n)
		}
		if got := <-done; !bytes.Equal(got, last) {
			t.Fatalf("peer read %d bytes then EOF, want the %d written", len(got), size)
		}
		if _, err := st.Write([]byte{1}); err == nil {
			t.Fatal("Write after WriteClose succeeded")
		}
		if err := st.WriteClose([]byte{1}); err == nil {
			t.Fatal("a second WriteClose succeeded")
		}
		peer.Close()
	}
}

// TestPatchReadNotify: the notification comes for data, the peer's FIN,
// Close and the session's death, and ReadReady says what a Read would do.
func TestPatchReadNotify(t *testing.T) {
	cli, srv, _ := patchPair(t)
	open := func() (*Stream, *Stream, chan struct{}) {
		st, err := cli.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		peer, err := srv.AcceptStream()
		if err != nil {
			t.Fatal(err)
		}
		notes := make(chan struct{}, 16)
		peer.SetReadNotify(func() {
			select {
			case notes <- struct{}{}:
			default:
			}
		})
		return st, peer, notes
	}
	waitNote := func(notes chan struct{}, what string) {
		t.Helper()
		select {
		case <-notes:
		case <-time.After(5 * time.Second):
			t.Fatalf("no notification for %s", what)
		}
	}

	st, peer, notes := open()
	if peer.ReadReady() {
		t.Fatal("ReadReady on an empty stream")
	}
	st.Write([]byte("hello"))
	waitNote(notes, "data")
	if !peer.ReadReady() {
		t.Fatal("not ReadReady with data buffered")
	}
	b := make([]byte, 16)
	if n, err := peer.Read(b); err != nil || string(b[:n]) != "hello" {
		t.Fatalf("read %q, %v", b[:n], err)
	}
	if peer.ReadReady() {
		t.Fatal("ReadReady after the buffer was drained")
	}
	st.Close()
	waitNote(notes, "the peer's FIN")
	if !peer.ReadReady() {
		t.Fatal("not ReadReady after the peer's FIN")
	}
	if _, err := peer.Read(b); err != io.EOF {
		t.Fatalf("read after FIN: %v, want EOF", err)
	}

	_, peer, notes = open()
	peer.Close()
	waitNote(notes, "Close")
	if !peer.ReadReady() {
		t.Fatal("not ReadReady after Close")
	}

	_, peer, notes = open()
	peer.SetReadNotify(nil)
	peer.SetReadNotify(func() { notes <- struct{}{} })
	srv.Close()
	waitNote(notes, "the session's close")
	if !peer.ReadReady() {
		t.Fatal("not ReadReady after the session closed")
	}
}

// TestPatchDataNotify: the data notification runs on the receive loop
// with no lock held, so it can take the bytes with TryRead; it takes
// the place of the read notification for data only (the FIN still
// comes through SetReadNotify); and a window update TryRead makes due
// leaves without the loop waiting, so a sender of many windows' worth
// never stalls on a reader that only takes bytes in the notification.
func TestPatchDataNotify(t *testing.T) {
	cli, srv, _ := patchPair(t)
	st, err := cli.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte{0})
	peer, err := srv.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(peer, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := peer.TryRead(make([]byte, 8)); err != ErrWouldBlock {
		t.Fatalf("TryRead on an empty stream: %v, want ErrWouldBlock", err)
	}

	var got atomic.Int64
	var readNotes atomic.Int32
	finished := make(chan struct{})
	buf := make([]byte, 64<<10)
	peer.SetDataNotify(func() {
		for {
			n, err := peer.TryRead(buf) // deadlocks if a lock is held
			got.Add(int64(n))
			if err == ErrWouldBlock {
				return
			}
			if err != nil {
				t.Errorf("TryRead: %v", err)
				return
			}
		}
	})
	peer.SetReadNotify(func() {
		readNotes.Add(1)
		select {
		case <-finished:
		default:
			if peer.ReadReady() && got.Load() == 16<<20 {
				close(finished)
			}
		}
	})

	// 16 windows of 1 MiB: the sender stalls unless updates leave.
	data := make([]byte, 16<<20)
	writeDone := make(chan error, 1)
	go func() {
		_, err := st.Write(data)
		writeDone <- err
	}()
	select {
	case err := <-writeDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("writer stalled after the reader took %d of %d bytes", got.Load(), len(data))
	}
	if readNotes.Load() != 0 {
		t.Errorf("%d read notifications for data; the data notification replaces them", readNotes.Load())
	}
	st.Close()
	select {
	case <-finished:
	case <-time.After(5 * time.Second):
		t.Fatalf("no read notification for the FIN (took %d bytes)", got.Load())
	}
	peer.Close()
	if _, err := peer.TryRead(buf); err != io.EOF {
		t.Fatalf("TryRead after Close: %v, want io.EOF", err)
	}
}
