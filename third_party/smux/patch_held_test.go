package smux

// Tests of the nanodems patch that lets TryWrite hold a frame until the
// forwarding receive loop reads again (PATCHES.md).

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// heldConn holds writes until a loop reads, as the connector's coalescing
// TLS connection does: WriteHeld keeps p, and the loop's connection writes
// what it kept when that loop's Read would read the socket (its buffer is
// empty) or at FlushHeld. WriteBuffered keeps p until Flush. Any other
// write takes the kept bytes first.
type heldConn struct {
	net.Conn
	br *bufio.Reader

	mu       sync.Mutex
	kept     []byte
	writes   atomic.Int64 // writes that reached the socket
	flushErr atomic.Value // an error Flush returns, if set

	hmu     sync.Mutex
	holders []*heldConn // connections keeping bytes until this one reads
}

func newHeldConn(c net.Conn) *heldConn {
	return &heldConn{Conn: c, br: bufio.NewReaderSize(c, 64<<10)}
}

func (c *heldConn) WriteWouldWait(int) bool { return false }

func (c *heldConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.kept) > 0 {
		p = append(c.kept, p...)
		c.kept = nil
	}
	c.writes.Add(1)
	if _, err := c.Conn.Write(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *heldConn) WriteBuffered(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.kept = append(c.kept, p...)
	return len(p), nil
}

func (c *heldConn) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err, _ := c.flushErr.Load().(error); err != nil {
		return err
	}
	if len(c.kept) == 0 {
		return nil
	}
	c.writes.Add(1)
	_, err := c.Conn.Write(c.kept)
	c.kept = nil
	return err
}

func (c *heldConn) WriteHeld(p []byte, loop io.Reader) (int, error) {
	l := loop.(*heldConn)
	c.mu.Lock()
	c.kept = append(c.kept, p...)
	c.mu.Unlock()
	l.hmu.Lock()
	l.holders = append(l.holders, c)
	l.hmu.Unlock()
	return len(p), nil
}

func (c *heldConn) Read(p []byte) (int, error) {
	if c.br.Buffered() == 0 {
		c.FlushHeld()
	}
	return c.br.Read(p)
}

func (c *heldConn) FlushHeld() {
	c.hmu.Lock()
	hs := c.holders
	c.holders = nil
	c.hmu.Unlock()
	for _, h := range hs {
		h.mu.Lock()
		if len(h.kept) > 0 {
			h.writes.Add(1)
			h.Conn.Write(h.kept)
			h.kept = nil
		}
		h.mu.Unlock()
	}
}

func tcpPair(t *testing.T) (net.Conn, net.Conn) {
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
	if c2 == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c1.Close(); c2.Close() })
	return c1, c2
}

// rawFrame is a version 2 frame as a peer sends it.
func rawFrame(cmd byte, sid uint32, data []byte) []byte {
	b := make([]byte, headerSize, headerSize+len(data))
	b[0], b[1] = 2, cmd
	binary.LittleEndian.PutUint16(b[2:], uint16(len(data)))
	binary.LittleEndian.PutUint32(b[4:], sid)
	return append(b, data...)
}

// heldForward sets up a receive loop that forwards with held writes: a
// session A over a heldConn whose peer is the raw connection returned (the
// test writes frames to it), its stream 1, whose data notification
// TryWrites what it reads to a stream of session B, B's peer stream,
// where the forwarded bytes arrive, and B's connection. cfg is A's.
func heldForward(t *testing.T, cfg *Config) (raw net.Conn, a *Session, out *Stream, bconn *heldConn) {
	t.Helper()
	ac, raw := tcpPair(t)
	a, err := Server(newHeldConn(ac), cfg)
	if err != nil {
		t.Fatal(err)
	}
	bc, bp := tcpPair(t)
	bcfg := DefaultConfig()
	bcfg.Version = 2
	bconn = newHeldConn(bc)
	b, err := Client(bconn, bcfg)
	if err != nil {
		t.Fatal(err)
	}
	bpeer, err := Server(bp, bcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close(); bpeer.Close() })

	fwd, err := b.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fwd.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
	out, err = bpeer.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	out.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(out, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}

	if _, err := raw.Write(rawFrame(cmdSYN, 1, nil)); err != nil {
		t.Fatal(err)
	}
	in, err := a.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1024)
	in.SetDataNotify(func() {
		for {
			n, err := in.TryRead(buf)
			if n > 0 {
				if sent, err := fwd.TryWrite(buf[:n], in); !sent || err != nil {
					t.Errorf("TryWrite: sent %v, %v", sent, err)
				}
			}
			if err != nil {
				return
			}
		}
	})
	return raw, a, out, bconn
}

func expectForwarded(t *testing.T, out *Stream, want string, when string) {
	t.Helper()
	got := make([]byte, len(want))
	out.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(out, got); err != nil {
		t.Fatalf("%s: the held frame never left: %v", when, err)
	}
	if string(got) != want {
		t.Fatalf("%s: got %q, want %q", when, got, want)
	}
}

// A frame TryWrite held for the forwarding loop leaves before that loop
// waits for anything but its connection: the accept backlog, the receive
// buffer's tokens, and its end. In each case the loop's connection has
// everything in its buffer, so no Read of the socket flushes it first.
func TestPatchHeldFlush(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Version = 2

	t.Run("next read", func(t *testing.T) {
		raw, _, out, bconn := heldForward(t, cfg)
		raw.Write(rawFrame(cmdPSH, 1, []byte("hello")))
		expectForwarded(t, out, "hello", "loop waiting to read")
		// Frames delivered by one read leave in one write.
		var batch []byte
		for _, s := range []string{"a", "b", "c"} {
			batch = append(batch, rawFrame(cmdPSH, 1, []byte(s))...)
		}
		w0 := bconn.writes.Load()
		raw.Write(batch)
		expectForwarded(t, out, "abc", "a batch")
		if n := bconn.writes.Load() - w0; n != 1 {
			t.Errorf("three frames from one read took %d writes, want 1", n)
		}
	})

	t.Run("accept backlog", func(t *testing.T) {
		raw, _, out, _ := heldForward(t, cfg)
		b := rawFrame(cmdPSH, 1, []byte("hello"))
		for i := 0; i <= defaultAcceptBacklog; i++ {
			b = append(b, rawFrame(cmdSYN, uint32(3+2*i), nil)...)
		}
		raw.Write(b)
		expectForwarded(t, out, "hello", "loop blocked on a full accept backlog")
	})

	t.Run("receive buffer", func(t *testing.T) {
		small := *cfg
		small.MaxReceiveBuffer = 4096
		small.MaxStreamBuffer = 4096
		raw, a, out, _ := heldForward(t, &small)
		raw.Write(rawFrame(cmdSYN, 3, nil))
		if _, err := a.AcceptStream(); err != nil { // never read
			t.Fatal(err)
		}
		b := rawFrame(cmdPSH, 1, []byte("hello"))
		b = append(b, rawFrame(cmdPSH, 3, make([]byte, 8192))...)
		raw.Write(b)
		expectForwarded(t, out, "hello", "loop out of receive tokens")
	})

	t.Run("loop ends", func(t *testing.T) {
		raw, _, out, _ := heldForward(t, cfg)
		b := rawFrame(cmdPSH, 1, []byte("hello"))
		b = append(b, 9, 9, 0, 0, 0, 0, 0, 0) // a version the loop refuses
		raw.Write(b)
		expectForwarded(t, out, "hello", "loop ended on a protocol error")
	})
}

// Data frames written at once by goroutines that are all ready to run
// share a write: each yields between buffering its frame and flushing,
// so the first flush takes the others' frames too. Every byte arrives.
// A failed flush fails the write and the session's later writes.
func TestPatchBufferedWrites(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	hc, outs, ins := bufferedRig(t)
	const writers = len(outs)

	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, err := outs[i].Write([]byte{byte(i), byte(i)}); err != nil {
				t.Errorf("writer %d: %v", i, err)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond) // every writer waits at start
	w0 := hc.writes.Load()
	close(start)
	wg.Wait()
	for i := range writers {
		got := make([]byte, 2)
		ins[i].SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(ins[i], got); err != nil || got[0] != byte(i) || got[1] != byte(i) {
			t.Fatalf("stream %d read %v, %v", i, got, err)
		}
	}
	if n := hc.writes.Load() - w0; n > int64(writers/2) {
		t.Errorf("%d writers ready together made %d writes; want at most %d", writers, n, writers/2)
	}

	hc.flushErr.Store(io.ErrShortWrite)
	if _, err := outs[0].Write([]byte{1}); err != io.ErrShortWrite {
		t.Errorf("write with a failing flush: %v, want %v", err, io.ErrShortWrite)
	}
	if _, err := outs[1].Write([]byte{1}); err == nil {
		t.Error("a write after a failed flush succeeded")
	}
}

// TestPatchBufferedCloses: the FIN frames of streams half-closed together
// share system calls as small data frames do, and each peer stream still
// reads its EOF.
func TestPatchBufferedCloses(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	hc, outs, ins := bufferedRig(t)
	const closers = len(outs)

	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range closers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if err := outs[i].CloseWrite(); err != nil {
				t.Errorf("closer %d: %v", i, err)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond) // every closer waits at start
	w0 := hc.writes.Load()
	close(start)
	wg.Wait()
	for i := range closers {
		ins[i].SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := ins[i].Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("stream %d after its peer's CloseWrite: read %d, %v; want EOF", i, n, err)
		}
	}
	if n := hc.writes.Load() - w0; n > int64(closers/2) {
		t.Errorf("%d streams half-closed together made %d writes; want at most %d", closers, n, closers/2)
	}
}

// bufferedRig is a client session on a heldConn (WriteBuffered, counted
// writes) and 16 streams to a server session, each with one byte
// delivered.
func bufferedRig(t *testing.T) (*heldConn, [16]*Stream, [16]*Stream) {
	t.Helper()
	c1, c2 := tcpPair(t)
	cfg := DefaultConfig()
	cfg.Version = 2
	hc := newHeldConn(c1)
	cli, err := Client(hc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Server(c2, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close(); srv.Close() })

	var outs, ins [16]*Stream
	for i := range outs {
		if outs[i], err = cli.OpenStream(); err != nil {
			t.Fatal(err)
		}
		outs[i].Write([]byte{0})
		if ins[i], err = srv.AcceptStream(); err != nil {
			t.Fatal(err)
		}
		ins[i].SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(ins[i], make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
	}
	return hc, outs, ins
}
