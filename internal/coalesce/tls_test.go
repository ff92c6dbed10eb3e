package coalesce

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/nanodems/connector/internal/testnet"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// countingConn counts the Writes that reach the socket.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// serverConfig returns a server config and a pool that trusts its
// certificate, which is for the name coalesce-test and for 127.0.0.1.
func serverConfig(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	server, client := testnet.TLSConfigs(t, "coalesce-test")
	return server, client.RootCAs
}

// pair returns a coalescing client over real loopback TCP, its socket's
// write counter, and the plain crypto/tls server end.
func pair(t *testing.T) (*Conn, *countingConn, *tls.Conn) {
	t.Helper()
	var cc *countingConn
	client, server := pairOver(t, func(raw net.Conn) net.Conn { cc = &countingConn{Conn: raw}; return cc })
	return client, cc, server
}

// pairOver returns a coalescing client over real loopback TCP, wrapped
// by wrap, and the plain crypto/tls server end.
func pairOver(t *testing.T, wrap func(net.Conn) net.Conn) (*Conn, *tls.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	client := Client(wrap(raw), &tls.Config{ServerName: "coalesce-test", InsecureSkipVerify: true})
	srvRaw := <-accepted
	if srvRaw == nil {
		t.Fatal("accept failed")
	}
	cfg, _ := serverConfig(t)
	server := tls.Server(srvRaw, cfg)
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestOneSocketWritePerWrite: a 200 KiB Write is 13 TLS records but one
// write to the socket, and every byte arrives.
func TestOneSocketWritePerWrite(t *testing.T) {
	client, cc, server := pair(t)
	go server.Handshake()
	// No explicit handshake: Write must run it uncorked, or it would
	// deadlock waiting for the server's flight.
	msg := make([]byte, 200<<10)
	rand.Read(msg)
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, len(msg))
		io.ReadFull(server, b)
		got <- b
	}()
	if _, err := client.Write([]byte{1}); err != nil { // runs the handshake
		t.Fatal(err)
	}
	before := cc.writes.Load()
	if _, err := client.Write(msg[1:]); err != nil {
		t.Fatal(err)
	}
	if n := cc.writes.Load() - before; n != 1 {
		t.Fatalf("a %d-byte Write made %d socket writes, want 1", len(msg)-1, n)
	}
	msg[0] = 1
	if b := <-got; !bytes.Equal(b, msg) {
		t.Fatal("the server read other bytes than were written")
	}
}

// TestConcurrentWrites: Writes from many goroutines arrive whole and
// uncorrupted (each message is length-prefixed and checksummed).
func TestConcurrentWrites(t *testing.T) {
	client, _, server := pair(t)
	go server.Handshake()
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				body := make([]byte, 1+(w*7919+i*104729)%(70<<10))
				rand.Read(body)
				sum := sha256.Sum256(body)
				msg := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
				msg = append(append(msg, sum[:]...), body...)
				if _, err := client.Write(msg); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for range writers * each {
		var hdr [4 + sha256.Size]byte
		if _, err := io.ReadFull(server, hdr[:]); err != nil {
			t.Fatal(err)
		}
		body := make([]byte, binary.BigEndian.Uint32(hdr[:4]))
		if _, err := io.ReadFull(server, body); err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(body); !bytes.Equal(sum[:], hdr[4:]) {
			t.Fatal("a message arrived corrupted or interleaved with another")
		}
	}
	wg.Wait()
}

// TestCloseNotifyAndErrors: Close sends close_notify uncorked (the peer
// reads EOF, not a reset), and a Write after the socket failed fails.
func TestCloseNotifyAndErrors(t *testing.T) {
	client, _, server := pair(t)
	go server.Handshake()
	if err := client.HandshakeContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	client.Close()
	b, err := io.ReadAll(server)
	if err != nil || string(b) != "bye" {
		t.Fatalf("server read %q, %v; want \"bye\" then EOF", b, err)
	}
	if _, err := client.Write([]byte("more")); err == nil {
		t.Fatal("Write after Close succeeded")
	}
}

// TestDial: Dial verifies the certificate against the host of the address
// when the config names none, and fails cleanly on a handshake error.
func TestDial(t *testing.T) {
	cfg, pool := serverConfig(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { io.Copy(c, c); c.Close() })
		}
	}()
	var d net.Dialer
	if _, err := Dial(context.Background(), &d, "tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "another"}); err == nil {
		t.Fatal("Dial accepted a certificate for another name")
	}
	clientCfg := &tls.Config{RootCAs: pool}
	c, err := Dial(context.Background(), &d, "tcp", ln.Addr().String(), clientCfg)
	if err != nil {
		t.Fatalf("Dial without ServerName: %v (the certificate is for 127.0.0.1)", err)
	}
	defer c.Close()
	if clientCfg.ServerName != "" {
		t.Fatal("Dial changed the caller's config")
	}
	if _, err := c.Write([]byte("echo")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "echo" {
		t.Fatalf("read %q, %v", b, err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}
