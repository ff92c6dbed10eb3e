package coalesce

import (
	"io"
	"net"
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
