package coalesce

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"
)

// handshake runs the handshake of a pair's two ends.
func handshake(t *testing.T, client *Conn, server *tls.Conn) {
	t.Helper()
	hs := make(chan error, 1)
	go func() { hs <- server.Handshake() }()
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-hs; err != nil {
		t.Fatal(err)
	}
}

// expectFrom reads want from c within 5 s.
func expectFrom(t *testing.T, c *tls.Conn, want []byte, when string) {
	t.Helper()
	got := make([]byte, len(want))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("%s: %v", when, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %q, want %q", when, got, want)
	}
}

// TestWriteHeld: records WriteHeld leaves for a loop reach the socket in
// one write, in order, when the loop's connection next reads its socket,
// with the next Write, at FlushHeld, or before close_notify; never
// before.
func TestWriteHeld(t *testing.T) {
	dst, writes, dstPeer := pair(t)
	handshake(t, dst, dstPeer)
	loop, loopPeer := pairOver(t, func(c net.Conn) net.Conn { return c })
	handshake(t, loop, loopPeer)

	hold := func(msgs ...string) []byte {
		t.Helper()
		var all []byte
		w0 := writes.writes.Load()
		for _, m := range msgs {
			if n, err := dst.WriteHeld([]byte(m), loop); n != len(m) || err != nil {
				t.Fatalf("WriteHeld: %d, %v", n, err)
			}
			all = append(all, m...)
		}
		if n := writes.writes.Load() - w0; n != 0 {
			t.Fatalf("%d socket writes while holding", n)
		}
		return all
	}
	oneWrite := func(when string, do func()) {
		t.Helper()
		w0 := writes.writes.Load()
		do()
		if n := writes.writes.Load() - w0; n != 1 {
			t.Errorf("%s: %d socket writes, want 1", when, n)
		}
	}

	// The loop's next read of its socket.
	held := hold("one", "two", "three")
	if _, err := loopPeer.Write([]byte{7}); err != nil {
		t.Fatal(err)
	}
	oneWrite("the loop's read", func() {
		loop.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(loop, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
	})
	expectFrom(t, dstPeer, held, "after the loop's read")

	// The next Write takes them first.
	held = hold("four", "five")
	oneWrite("a Write", func() {
		if _, err := dst.Write([]byte("six")); err != nil {
			t.Fatal(err)
		}
	})
	expectFrom(t, dstPeer, append(held, "six"...), "after a Write")

	// FlushHeld; a second one has nothing to write.
	held = hold("seven")
	oneWrite("FlushHeld", loop.FlushHeld)
	expectFrom(t, dstPeer, held, "after FlushHeld")
	w0 := writes.writes.Load()
	loop.FlushHeld()
	if n := writes.writes.Load() - w0; n != 0 {
		t.Errorf("FlushHeld with nothing held: %d socket writes", n)
	}

	// A loop that is not a coalescing connection: a plain Write.
	oneWrite("WriteHeld for another reader", func() {
		if _, err := dst.WriteHeld([]byte("eight"), bytes.NewReader(nil)); err != nil {
			t.Fatal(err)
		}
	})
	expectFrom(t, dstPeer, []byte("eight"), "a plain write")

	// close_notify goes after what is held.
	held = hold("nine")
	dst.Close()
	expectFrom(t, dstPeer, held, "before close_notify")
	dstPeer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := dstPeer.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("after close_notify: %d, %v; want EOF", n, err)
	}
}

// TestWriteBuffered: WriteBuffered's records leave at Flush or with the
// next Write, in one write, in order; a loop does not flush records
// buffered after its held ones (their writer does, with the held ones).
func TestWriteBuffered(t *testing.T) {
	dst, writes, dstPeer := pair(t)
	handshake(t, dst, dstPeer)
	loop, loopPeer := pairOver(t, func(c net.Conn) net.Conn { return c })
	handshake(t, loop, loopPeer)
	count := func(when string, want int64, do func()) {
		t.Helper()
		w0 := writes.writes.Load()
		do()
		if n := writes.writes.Load() - w0; n != want {
			t.Errorf("%s: %d socket writes, want %d", when, n, want)
		}
	}
	buffer := func(m string) {
		t.Helper()
		if _, err := dst.WriteBuffered([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}

	count("WriteBuffered", 0, func() { buffer("a"); buffer("b") })
	count("Flush", 1, func() {
		if err := dst.Flush(); err != nil {
			t.Fatal(err)
		}
	})
	expectFrom(t, dstPeer, []byte("ab"), "after Flush")
	count("Flush with nothing buffered", 0, func() { dst.Flush() })

	count("WriteBuffered, then Write", 1, func() {
		buffer("c")
		dst.Write([]byte("d"))
	})
	expectFrom(t, dstPeer, []byte("cd"), "after a Write")

	count("held, then buffered, then the loop's flush", 0, func() {
		dst.WriteHeld([]byte("e"), loop)
		buffer("f")
		loop.FlushHeld()
	})
	count("the buffering writer's Flush", 1, func() { dst.Flush() })
	expectFrom(t, dstPeer, []byte("ef"), "after the buffering writer's Flush")
}
