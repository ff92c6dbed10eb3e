package pipe_test

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nanodems/connector/internal/coalesce"
	"github.com/nanodems/connector/internal/pipe"
	"github.com/nanodems/connector/internal/testnet"
	"github.com/nanodems/connector/mux"
	"github.com/xtaci/smux"
)

// gatedConn is the relay's socket of the client's session: while the
// gate is shut its reads wait, so that frames pile up in the kernel and
// one read of the relay brings many.
type gatedConn struct {
	net.Conn
	gate    atomic.Pointer[chan struct{}]
	reading atomic.Int32 // reads past the gate, waiting in the socket
}

func (c *gatedConn) Read(p []byte) (int, error) {
	if ch := c.gate.Load(); ch != nil {
		<-*ch
	}
	c.reading.Add(1)
	defer c.reading.Add(-1)
	return c.Conn.Read(p)
}

// shut closes the gate once the session's reader waits in the socket,
// past it: that read ends with the next chunk, and the one after waits
// at the gate. Shutting it while the reader is still on its way back
// from the previous chunk would hold the next chunk too.
func (c *gatedConn) shut(t *testing.T) chan struct{} {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); c.reading.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the relay's session never waited on its socket")
		}
		time.Sleep(time.Millisecond)
	}
	ch := make(chan struct{})
	c.gate.Store(&ch)
	return ch
}

// writeCounter counts the writes that reach the relay's socket of the
// agent's session; its SyscallConn is the socket's, which WriteWouldWait
// reads.
type writeCounter struct {
	net.Conn
	writes atomic.Int64
}

func (c *writeCounter) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

func (c *writeCounter) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(syscall.Conn).SyscallConn()
}

// tlsSessions returns smux sessions over a coalescing TLS connection
// each way between raw's two ends.
func tlsSessions(t *testing.T, clientRaw, serverRaw net.Conn, srvCfg, cliCfg *tls.Config) (cli, srv *smux.Session) {
	t.Helper()
	cc, sc := coalesce.Client(clientRaw, cliCfg), coalesce.Server(serverRaw, srvCfg)
	hs := make(chan error, 1)
	go func() { hs <- sc.Handshake() }()
	if err := cc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-hs; err != nil {
		t.Fatal(err)
	}
	var err error
	if cli, err = smux.Client(cc, mux.Config()); err != nil {
		t.Fatal(err)
	}
	if srv, err = smux.Server(sc, mux.Config()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close(); srv.Close() })
	return cli, srv
}

// TestJoinAsyncInlineRelayHeld: through a relay whose sessions run over
// the connector's coalescing TLS, the chunks one read of the client's
// session brings for many tunnels leave toward the agent in a few writes,
// not one each, and every byte arrives.
func TestJoinAsyncInlineRelayHeld(t *testing.T) {
	srvCfg, cliCfg := testnet.TLSConfigs(t, "pipe-test")
	c1, r1 := testnet.TCPPair(t)
	r2, a2 := testnet.TCPPair(t)
	gated := &gatedConn{Conn: r1}
	counted := &writeCounter{Conn: r2}
	clientSess, relayA := tlsSessions(t, c1, gated, srvCfg, cliCfg)
	relayB, agentSess := tlsSessions(t, counted, a2, srvCfg, cliCfg)

	const tunnels = 16
	var clients, agents [tunnels]*mux.Stream
	var results [tunnels]chan error
	for i := range tunnels {
		var ra, rb *mux.Stream
		clients[i], ra = openOn(t, clientSess, relayA)
		rb, agents[i] = openOn(t, relayB, agentSess)
		results[i] = make(chan error, 1)
		pipe.JoinAsync(ra, rb, nil, nil, func(err error) { results[i] <- err })
	}
	roundTrip := func(i int, msg []byte) {
		t.Helper()
		got := make([]byte, len(msg))
		agents[i].SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(agents[i], got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("tunnel %d: agent read %x, %v; want %x", i, got, err, msg)
		}
	}
	// Every tunnel carried a chunk, so windows and pumps are settled.
	for i := range tunnels {
		msg := []byte{byte(i)}
		clients[i].Write(msg)
		roundTrip(i, msg)
	}

	// Shut the gate; the read in progress ends with this chunk.
	ch := gated.shut(t)
	clients[0].Write([]byte{0xff})
	roundTrip(0, []byte{0xff})

	msgs := make([][]byte, tunnels)
	for i := range tunnels {
		msgs[i] = make([]byte, 64)
		rand.Read(msgs[i])
		if _, err := clients[i].Write(msgs[i]); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond) // the client's writes reach the relay's socket
	w0, inline0 := counted.writes.Load(), pipe.InlineChunks()
	gated.gate.Store(nil)
	close(ch)
	for i := range tunnels {
		roundTrip(i, msgs[i])
	}
	if n := pipe.InlineChunks() - inline0; n < tunnels {
		t.Errorf("%d of %d chunks forwarded on the receive loop", n, tunnels)
	}
	if n := counted.writes.Load() - w0; n > tunnels/2 {
		t.Errorf("%d chunks that arrived together left in %d writes; want at most %d", tunnels, n, tunnels/2)
	}

	for i := range tunnels {
		clients[i].Close()
		agents[i].Close()
		select {
		case <-results[i]:
		case <-time.After(5 * time.Second):
			t.Fatalf("tunnel %d: the join did not end", i)
		}
	}
}
