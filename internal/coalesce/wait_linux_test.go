package coalesce

import (
	"bytes"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestWriteWouldWait: against a peer that stops reading, Writes go on
// without waiting for as long as WriteWouldWait says false, it turns
// true before the socket is full, and false again once the peer has
// read.
func TestWriteWouldWait(t *testing.T) {
	var raw net.Conn
	client, server := pairOver(t, func(c net.Conn) net.Conn { raw = c; return c })
	hs := make(chan error, 1)
	go func() { hs <- server.Handshake() }()
	if !client.WriteWouldWait(1) {
		t.Error("WriteWouldWait false before the handshake")
	}
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-hs; err != nil {
		t.Fatal(err)
	}

	const chunk = 16 << 10
	if client.WriteWouldWait(chunk) {
		t.Fatal("WriteWouldWait true on an empty socket")
	}
	// A Write that waits fails at this deadline instead of hanging.
	raw.SetWriteDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, chunk)
	total := 0
	for !client.WriteWouldWait(chunk) {
		if total > 256<<20 {
			t.Fatalf("WriteWouldWait still false after %d bytes nobody read", total)
		}
		n, err := client.Write(buf)
		total += n
		if err != nil {
			t.Fatalf("Write after %d bytes with WriteWouldWait false: %v", total, err)
		}
	}
	if total < 4*chunk {
		t.Errorf("WriteWouldWait turned true after %d bytes", total)
	}
	raw.SetWriteDeadline(time.Time{})

	server.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(server, make([]byte, total)); err != nil {
		t.Fatalf("peer read: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for client.WriteWouldWait(chunk) {
		if time.Now().After(deadline) {
			t.Fatal("WriteWouldWait still true after the peer read everything")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWriteHeldWouldWait: records held for a loop count as written, so
// WriteWouldWait turns true before they would overfill the socket, and
// the one write that flushes them does not wait although the peer reads
// nothing meanwhile.
func TestWriteHeldWouldWait(t *testing.T) {
	var raw net.Conn
	var cc *countingConn
	dst, peer := pairOver(t, func(c net.Conn) net.Conn { raw = c; cc = &countingConn{Conn: c}; return cc })
	handshake(t, dst, peer)
	loop, loopPeer := pairOver(t, func(c net.Conn) net.Conn { return c })
	handshake(t, loop, loopPeer)

	const chunk = 4 << 10
	var sent []byte
	w0 := cc.writes.Load()
	for i := 0; !dst.WriteWouldWait(chunk); i++ {
		if len(sent) > 64<<20 {
			t.Fatalf("WriteWouldWait still false with %d bytes held", len(sent))
		}
		b := bytes.Repeat([]byte{byte(i)}, chunk)
		if _, err := dst.WriteHeld(b, loop); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, b...)
	}
	if n := cc.writes.Load() - w0; n != 0 {
		t.Fatalf("%d socket writes while holding", n)
	}
	if len(sent) < 4*chunk {
		t.Fatalf("WriteWouldWait turned true with %d bytes held", len(sent))
	}
	// A flush that waits fails at this deadline, and so does every later
	// write.
	raw.SetWriteDeadline(time.Now().Add(5 * time.Second))
	loop.FlushHeld()
	if n := cc.writes.Load() - w0; n != 1 {
		t.Fatalf("flush: %d socket writes, want 1", n)
	}
	raw.SetWriteDeadline(time.Time{})
	if _, err := dst.Write([]byte("end")); err != nil {
		t.Fatalf("Write after the flush: %v", err)
	}
	expectFrom(t, peer, append(sent, "end"...), "everything held, then a Write")
}

// SyscallConn is the socket's, so that WriteWouldWait sees it under the
// counter.
func (c *countingConn) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(syscall.Conn).SyscallConn()
}

// TestWriteWouldWaitCredit: the room measured once answers the next
// questions that fit in it less what was written since, at most
// creditAnswers of them, and a question that does not fit measures again.
func TestWriteWouldWaitCredit(t *testing.T) {
	client, server := pairOver(t, func(c net.Conn) net.Conn { return c })
	handshake(t, client, server)
	go io.Copy(io.Discard, server)

	m0 := roomMeasures.Load()
	if client.WriteWouldWait(64) {
		t.Fatal("WriteWouldWait true on an empty socket")
	}
	if n := roomMeasures.Load() - m0; n != 1 {
		t.Fatalf("first question: %d measures, want 1", n)
	}
	credit := client.under.credit.Load()
	if _, err := client.Write(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if got := client.under.credit.Load(); got > credit-2*1000 {
		t.Errorf("a 1,000-byte Write left the credit at %d of %d", got, credit)
	}
	for i := range creditAnswers {
		if client.WriteWouldWait(64) {
			t.Fatalf("answer %d: true on a socket with room", i)
		}
	}
	if n := roomMeasures.Load() - m0; n != 1 {
		t.Fatalf("%d answers: %d measures, want 1", creditAnswers, n)
	}
	client.WriteWouldWait(64)
	if n := roomMeasures.Load() - m0; n != 2 {
		t.Fatalf("answer %d: %d measures, want 2 (the credit's answers are spent)", creditAnswers+1, n)
	}
	// A question larger than the credit measures again.
	client.WriteWouldWait(int(client.under.credit.Load()))
	if n := roomMeasures.Load() - m0; n != 3 {
		t.Fatalf("a question over the credit: %d measures, want 3", n)
	}
}
