package wsconn

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// recordConn keeps every Write it gets.
type recordConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (r *recordConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes = append(r.writes, bytes.Clone(p))
	return len(p), nil
}

// clientFrame builds a masked binary frame of n payload bytes, as a
// client sends it.
func clientFrame(n int, fill byte) []byte {
	var h []byte
	switch {
	case n < 126:
		h = []byte{0x82, 0x80 | byte(n)}
	case n < 1<<16:
		h = []byte{0x82, 0x80 | 126, 0, 0}
		binary.BigEndian.PutUint16(h[2:], uint16(n))
	default:
		h = make([]byte, 10)
		h[0], h[1] = 0x82, 0x80|127
		binary.BigEndian.PutUint64(h[2:], uint64(n))
	}
	h = append(h, 1, 2, 3, 4) // masking key
	return append(h, bytes.Repeat([]byte{fill}, n)...)
}

// pieces cuts b as coder/websocket's 4 KiB bufio writer does.
func pieces(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		k := min(len(b), 4096)
		out = append(out, b[:k])
		b = b[k:]
	}
	return out
}

func TestCoalesceFrames(t *testing.T) {
	rec := &recordConn{}
	c := CoalesceFrames(rec)
	write := func(p []byte) {
		t.Helper()
		if n, err := c.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write(%d bytes) = %d, %v", len(p), n, err)
		}
	}
	req := []byte("GET /api/cli/mux HTTP/1.1\r\nHost: x\r\n\r\n")
	write(req)
	small := clientFrame(64, 'a')
	write(small)
	big := clientFrame(65535+8, 'b')
	for _, p := range pieces(big) {
		write(p)
	}
	empty := clientFrame(0, 0) // CloseWrite's empty message
	write(empty)
	huge := clientFrame(maxCoalesced+1, 'c') // too big to collect: passes through in pieces
	hp := pieces(huge)
	for _, p := range hp {
		write(p)
	}
	want := append([][]byte{req, small, big, empty}, hp...)
	if len(rec.writes) != len(want) {
		t.Fatalf("%d writes reached the conn, want %d", len(rec.writes), len(want))
	}
	for i := range want {
		if !bytes.Equal(rec.writes[i], want[i]) {
			t.Fatalf("write %d: %d bytes, want %d", i, len(rec.writes[i]), len(want[i]))
		}
	}
	// A Write that runs past its frame ends the interpretation: from then
	// on, bytes go through unchanged and in order.
	rec.writes = nil
	two := append(clientFrame(10000, 'd'), clientFrame(5, 'e')...)
	write(two[:4096])
	write(two[4096:])
	write([]byte{0x02, 0x01})
	got := bytes.Join(rec.writes, nil)
	if !bytes.Equal(got, append(two, 0x02, 0x01)) {
		t.Fatalf("after a frame overrun: %d bytes reached the conn, want %d", len(got), len(two)+2)
	}
	if !c.(*coalescer).pass {
		t.Fatal("not in pass-through mode after a frame overrun")
	}
}

// TestCoalesceFramesWebSocket runs a real client over the wrapper: large
// and small messages and half-close arrive intact, and each large message
// reaches the socket in one Write.
func TestCoalesceFramesWebSocket(t *testing.T) {
	got := make(chan []byte, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		ws.SetReadLimit(1 << 20)
		c := New(ws, Addr("server"), Addr("client"))
		defer c.Close()
		b, err := io.ReadAll(c)
		if err != nil {
			t.Error(err)
		}
		got <- b
	}))
	defer srv.Close()
	var mu sync.Mutex
	var sizes []int
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return CoalesceFrames(&sizeConn{Conn: c, mu: &mu, sizes: &sizes}), nil
	}}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		t.Fatal(err)
	}
	c := New(ws, Addr("client"), Addr("server"))
	defer c.Close()
	var sent []byte
	for i, n := range []int{65535, 7, 40000, 1, 65536} {
		b := bytes.Repeat([]byte{byte(i + 1)}, n)
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, b...)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, sent) {
		t.Fatalf("server read %d bytes, want the %d sent", len(b), len(sent))
	}
	mu.Lock()
	defer mu.Unlock()
	large := 0
	for _, n := range sizes {
		if n > 60000 {
			large++
		}
	}
	if large < 2 {
		t.Errorf("writes reaching the socket: %v; want each 64 KiB message in one", sizes)
	}
}

type sizeConn struct {
	net.Conn
	mu    *sync.Mutex
	sizes *[]int
}

func (s *sizeConn) Write(p []byte) (int, error) {
	s.mu.Lock()
	*s.sizes = append(*s.sizes, len(p))
	s.mu.Unlock()
	return s.Conn.Write(p)
}
