package relay_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nanodems/connector/internal/testnet"
	"github.com/nanodems/connector/internal/testwait"
	"github.com/nanodems/connector/relay"
)

// TestBridgeLinkPooled: many bridged tunnels at once, each echoing its
// own bytes, cross one TLS connection between the two relays.
func TestBridgeLinkPooled(t *testing.T) {
	f := startFleet(t, 2)
	r1, r2 := f.relays[0], f.relays[1]
	admin := relay.Principal{Admin: true, Actor: "test"}
	var conns []net.Conn
	for i := range 20 {
		c, err := r2.Dial(context.Background(), admin, f.d.Info.EchoHandle, relay.DialOptions{})
		must(t, err)
		defer c.Close()
		msg := fmt.Sprintf("tunnel %d", i)
		_, err = c.Write([]byte(msg))
		must(t, err)
		conns = append(conns, c)
	}
	for i, c := range conns {
		b := make([]byte, len(fmt.Sprintf("tunnel %d", i)))
		_, err := io.ReadFull(c, b)
		must(t, err)
		if string(b) != fmt.Sprintf("tunnel %d", i) {
			t.Fatalf("tunnel %d echoed %q", i, b)
		}
	}
	if st := r2.BridgeStats(); st.Open != 20 {
		t.Fatalf("bridges open on r2: %+v, want 20", st)
	}
	if d, _ := relay.PeerLinkConns(r2); d != 1 {
		t.Fatalf("r2 dialled %d links for 20 tunnels, want 1", d)
	}
	if _, s := relay.PeerLinkConns(r1); s != 1 {
		t.Fatalf("r1 serves %d links for 20 tunnels, want 1", s)
	}
}

// TestBridgeLinkLossCuts: the link between the relays fails under open
// bridged tunnels: each one's Read fails with the lost link, in words
// that name no transport or address, and the next open dials a new link.
func TestBridgeLinkLossCuts(t *testing.T) {
	f := startFleet(t, 2)
	r1, r2 := f.relays[0], f.relays[1]
	admin := relay.Principal{Admin: true, Actor: "test"}
	var conns []net.Conn
	for range 3 {
		c, err := r2.Dial(context.Background(), admin, f.d.Info.EchoHandle, relay.DialOptions{})
		must(t, err)
		defer c.Close()
		_, err = c.Write([]byte("ping"))
		must(t, err)
		_, err = io.ReadFull(c, make([]byte, 4))
		must(t, err)
		conns = append(conns, c)
	}
	relay.CutPeerLinks(r2)
	for i, c := range conns {
		must(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
		_, err := c.Read(make([]byte, 10))
		if err == nil || err == io.EOF || errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "link to the relay that holds the agent was lost") {
			t.Fatalf("tunnel %d after the link failed: %v, want the lost link", i, err)
		}
		if strings.Contains(err.Error(), "127.0.0.1") {
			t.Fatalf("tunnel %d: %v names an address", i, err)
		}
		c.Close()
	}
	testwait.For(t, 10*time.Second, "bridges ended on both relays", func() bool {
		return r1.BridgeStats().Open == 0 && r2.BridgeStats().Open == 0
	})
	c, err := r2.Dial(context.Background(), admin, f.d.Info.EchoHandle, relay.DialOptions{})
	must(t, err)
	defer c.Close()
	must(t, testnet.RoundTrip(c, 64<<10))
}

// TestBridgeHalfCloseAndCut: a bridged tunnel half-closed by the device
// reads EOF on the calling relay and still takes writes; one the caller
// closes before its EOF is a cut, which the device reads as a reset, not
// an end.
func TestBridgeHalfCloseAndCut(t *testing.T) {
	f := startFleet(t, 2)
	r2 := f.relays[1]
	admin := relay.Principal{Admin: true, Actor: "test"}
	// The device says hello and half-closes, then counts what it reads.
	got := make(chan error, 4)
	dev := testnet.Serve(t, func(c net.Conn) {
		c.Write([]byte("hello"))
		c.(*net.TCPConn).CloseWrite()
		n, err := io.Copy(io.Discard, c)
		if err == nil {
			err = fmt.Errorf("read %d bytes to EOF", n)
		}
		got <- err
	})
	h := addDevice(t, f.d, dev.Port)

	c, err := r2.Dial(context.Background(), admin, h, relay.DialOptions{})
	must(t, err)
	b, err := io.ReadAll(c)
	must(t, err)
	if string(b) != "hello" {
		t.Fatalf("read %q before EOF", b)
	}
	_, err = c.Write(make([]byte, 1000))
	must(t, err)
	must(t, c.(closeWriter).CloseWrite())
	if err := <-got; err == nil || err.Error() != "read 1000 bytes to EOF" {
		t.Fatalf("device after the half-close: %v", err)
	}
	c.Close()

	// Closed without CloseWrite: the device's read fails.
	c, err = r2.Dial(context.Background(), admin, h, relay.DialOptions{})
	must(t, err)
	_, err = io.ReadAll(c)
	must(t, err)
	_, err = c.Write([]byte("partial"))
	must(t, err)
	c.Close()
	select {
	case err := <-got:
		if err == nil || strings.HasPrefix(err.Error(), "read ") {
			t.Fatalf("device after the cut: %v, want a reset", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("device never saw the cut")
	}
}
