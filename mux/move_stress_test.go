package mux_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xtaci/smux"

	"github.com/nanodems/connector/internal/coalesce"
	"github.com/nanodems/connector/internal/pipe"
	"github.com/nanodems/connector/internal/testnet"
	"github.com/nanodems/connector/mux"
)

// moveRig is a relay and an agent as the product wires them, minus the
// store: one smux session over TLS on loopback, and a listener where the
// agent dials a dedicated TLS connection per moved tunnel, whose preamble
// names the tunnel's stream id.
type moveRig struct {
	relay, agent *smux.Session
	ln           net.Listener
	client       *tls.Config
	server       *tls.Config

	// refuse, if set, says which tunnels' dedicated connections the
	// relay closes after reading the preamble, as it does when its
	// checks fail.
	refuse func(id uint32) bool

	mu      sync.Mutex
	streams map[uint32]*mux.Stream // the relay's ends, by stream id
	wg      sync.WaitGroup
}

func newMoveRig(tb testing.TB) *moveRig {
	tb.Helper()
	g := &moveRig{streams: map[uint32]*mux.Stream{}}
	g.server, g.client = testnet.TLSConfigs(tb, "127.0.0.1")
	var err error
	g.ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	// The shared session: agent dials, relay accepts, both over TLS.
	sessConn := make(chan *coalesce.Conn, 1)
	go func() {
		raw, err := g.ln.Accept()
		if err != nil {
			sessConn <- nil
			return
		}
		c := coalesce.Server(raw, g.server)
		if err := c.Handshake(); err != nil {
			raw.Close()
			c = nil
		}
		sessConn <- c
	}()
	ac, err := coalesce.Dial(context.Background(), &net.Dialer{}, "tcp", g.ln.Addr().String(), g.client)
	if err != nil {
		tb.Fatal(err)
	}
	rc := <-sessConn
	if rc == (*coalesce.Conn)(nil) {
		tb.Fatal("accept failed")
	}
	if g.relay, err = smux.Client(rc, mux.Config()); err != nil {
		tb.Fatal(err)
	}
	if g.agent, err = smux.Server(ac, mux.Config()); err != nil {
		tb.Fatal(err)
	}
	g.wg.Add(1)
	go g.acceptDedicated()
	tb.Cleanup(func() {
		g.ln.Close()
		g.relay.Close()
		g.agent.Close()
		g.wg.Wait()
	})
	return g
}

// acceptDedicated is the relay's side of a move: TLS handshake, preamble,
// then Attach to the tunnel the preamble names.
func (g *moveRig) acceptDedicated() {
	defer g.wg.Done()
	for {
		raw, err := g.ln.Accept()
		if err != nil {
			return
		}
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			tc := coalesce.Server(raw, g.server)
			raw.SetDeadline(time.Now().Add(15 * time.Second))
			var pre [5]byte
			if err := tc.Handshake(); err != nil {
				raw.Close()
				return
			}
			if _, err := io.ReadFull(tc, pre[:]); err != nil || pre[0] != mux.PreambleDedicatedAcked {
				raw.Close()
				return
			}
			id := binary.BigEndian.Uint32(pre[1:])
			g.mu.Lock()
			s := g.streams[id]
			g.mu.Unlock()
			if s == nil || (g.refuse != nil && g.refuse(id)) {
				raw.Close() // as the relay refuses: no answer, a close
				return
			}
			if _, err := tc.Write([]byte{mux.DedicatedAccepted}); err != nil {
				raw.Close()
				return
			}
			tc.SetDeadline(time.Time{})
			if s.Attach(tc) != nil {
				raw.Close()
			}
		}()
	}
}

// open opens a tunnel: the relay's framed end and the agent's.
func (g *moveRig) open(tb testing.TB) (r, a *mux.Stream) {
	tb.Helper()
	rs, err := g.relay.OpenStream()
	if err != nil {
		tb.Fatal(err)
	}
	r = mux.NewStream(rs)
	g.mu.Lock()
	g.streams[rs.ID()] = r
	g.mu.Unlock()
	as, err := g.agent.AcceptStream()
	if err != nil {
		tb.Fatal(err)
	}
	return r, mux.NewStream(as)
}

// move is the agent's side of a move, as agent.moveToDedicated does it:
// dial, preamble, the relay's acceptance, Attach.
func (g *moveRig) move(a *mux.Stream) error {
	var pre [5]byte
	pre[0] = mux.PreambleDedicatedAcked
	binary.BigEndian.PutUint32(pre[1:], a.ID())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := coalesce.Dial(ctx, &net.Dialer{}, "tcp", g.ln.Addr().String(), g.client)
	if err != nil {
		return fmt.Errorf("dial dedicated: %w", err)
	}
	if _, err := c.Write(pre[:]); err != nil {
		c.Close()
		return fmt.Errorf("preamble: %w", err)
	}
	deadline, _ := ctx.Deadline()
	if err := mux.AwaitAccepted(c, deadline); err != nil {
		c.Close()
		return err
	}
	if err := a.Attach(c); err != nil {
		c.Close()
		return fmt.Errorf("attach: %w", err)
	}
	return nil
}

// countingReader counts what has been read through it, for a mover that
// waits until a tunnel is mid-transfer.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// chunkedWriter writes in random chunk sizes, as a copy loop fed by a
// socket does: frames of every size up to a full one, and larger writes
// that Stream.Write splits.
type chunkedWriter struct {
	w   io.Writer
	rng *rand.Rand
}

func (c chunkedWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		k := min(len(p), 1+c.rng.IntN(3*mux.MaxPayload/2))
		n, err := c.w.Write(p[:k])
		written += n
		if err != nil {
			return written, err
		}
		p = p[k:]
	}
	return written, nil
}

// stressSize reads NANODEMS_MOVE_STRESS=tunnels,MiB,rounds for a longer
// run; the default keeps the test within seconds.
func stressSize(tunnels, mib, rounds int) (int, int, int) {
	v := os.Getenv("NANODEMS_MOVE_STRESS")
	if v == "" {
		return tunnels, mib, rounds
	}
	var t, m, r int
	if _, err := fmt.Sscanf(v, "%d,%d,%d", &t, &m, &r); err != nil {
		panic("NANODEMS_MOVE_STRESS wants tunnels,MiB,rounds: " + strconv.Quote(v))
	}
	return t, m, r
}

// Many tunnels move to dedicated TLS connections while bytes flow both
// ways at full speed on one shared session, each at a random point of its
// transfer, some right after one side has half-closed: every byte of every
// tunnel arrives once and in order (SHA-256 of each direction), and every
// tunnel ends with a clean EOF both ways. Half the tunnels run through
// pipe.Join to a real TCP echo target, as on the agent; the others write
// and read independent streams of different lengths at each end.
func TestStreamMoveStress(t *testing.T) {
	tunnels, mib, rounds := stressSize(16, 4, 3)
	if testing.Short() {
		tunnels, rounds = 8, 1
	}
	echo := echoTarget(t)
	for round := range rounds {
		g := newMoveRig(t)
		var wg sync.WaitGroup
		errs := make(chan error, 8*tunnels)
		var movedN atomic.Int64
		var sizes [][3]int64 // down, up, move point of each tunnel
		start := time.Now()
		for i := range tunnels {
			r, a := g.open(t)
			seed := uint64(round*1000 + i)
			rng := rand.New(rand.NewPCG(seed, 7))
			// Sizes: the full size, or a short one so that direction's
			// EOF is sent before, during or just after the move.
			size := func() int64 {
				if rng.IntN(4) == 0 {
					return int64(rng.IntN(256 << 10))
				}
				return int64(mib<<20) + int64(rng.IntN(1<<20))
			}
			down, up := size(), size()
			echoed := i%2 == 0
			if echoed {
				up = down
			}
			var sent atomic.Int64 // bytes sent both ways so far, for the mover
			moveAt := rng.Int64N((down+up)/2 + 1)
			sizes = append(sizes, [3]int64{down, up, moveAt})
			var tunnel sync.WaitGroup // this tunnel's ends
			if echoed {
				tunnel.Add(3) // relay's writer and reader, agent's Pipe
			} else {
				tunnel.Add(4) // a writer and a reader at each end
			}
			fin := make(chan struct{})
			wg.Add(2)
			go func() {
				defer wg.Done()
				tunnel.Wait()
				close(fin)
				r.Close()
				a.Close()
			}()
			// The mover: the agent moves the tunnel once it is moveAt
			// bytes in, as the rate watch does from its own goroutine.
			go func() {
				defer wg.Done()
				for sent.Load() < moveAt {
					select {
					case <-fin:
						return // over before its move: nothing to check
					case <-time.After(time.Duration(rng.IntN(1000)) * time.Microsecond):
					}
				}
				err := g.move(a)
				select {
				case <-fin:
					// Ended while the move was under way: Attach may find
					// the stream closed, which is no loss.
				default:
					// net.ErrClosed: the agent's Pipe has ended its end,
					// both directions done, before the move came.
					if err != nil && !errors.Is(err, net.ErrClosed) {
						errs <- fmt.Errorf("tunnel %d: move at %d bytes: %w", i, moveAt, err)
					}
				}
				if err == nil {
					movedN.Add(1)
				}
			}()
			send := func(s *mux.Stream, n int64, seed uint64) ([32]byte, error) {
				h := sha256.New()
				var src io.Reader = countingReader{io.TeeReader(io.LimitReader(rand.NewChaCha8(seedKey(seed)), n), h), &sent}
				var err error
				if seed%2 == 0 {
					_, err = io.Copy(chunkedWriter{s, rand.New(rand.NewPCG(seed, 1))}, src)
					if err == nil {
						err = s.CloseWrite()
					}
				} else {
					_, err = pipe.Copy(s, src, nil) // CloseWrite at the end
				}
				var sum [32]byte
				copy(sum[:], h.Sum(nil))
				return sum, err
			}
			downSums, upSums := make(chan [32]byte, 1), make(chan [32]byte, 1)
			go func() {
				defer tunnel.Done()
				sum, err := send(r, down, seed*2)
				if err != nil {
					errs <- fmt.Errorf("tunnel %d relay→agent: write: %w", i, err)
				}
				downSums <- sum
			}()
			go checkWith(&tunnel, errs, i, "agent→relay", r, up, upSums, seed)
			if echoed {
				// The agent's end as in the product: Pipe to a TCP echo
				// target, which answers with what it was sent.
				c, err := net.Dial("tcp", echo)
				if err != nil {
					t.Fatal(err)
				}
				go func() {
					defer tunnel.Done()
					var in, out atomic.Uint64
					if err := pipe.Join(a, c, &out, &in); err != nil {
						errs <- fmt.Errorf("tunnel %d: agent pipe: %w", i, err)
					}
				}()
				upSums <- <-downSums
				continue
			}
			// Independent streams each way, of different lengths.
			go func() {
				defer tunnel.Done()
				sum, err := send(a, up, seed*2+1)
				if err != nil {
					errs <- fmt.Errorf("tunnel %d agent→relay: write: %w", i, err)
				}
				upSums <- sum
			}()
			go checkWith(&tunnel, errs, i, "relay→agent", a, down, downSums, seed/3)
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(120 * time.Second):
			t.Fatalf("round %d: tunnels still running after 120 s", round)
		}
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("sizes: %v", sizes)
		}
		t.Logf("round %d: %d of %d tunnels (~%d MiB each way) moved mid-transfer; %v", round, movedN.Load(), tunnels, mib, time.Since(start).Round(time.Millisecond))
		if t.Failed() {
			return
		}
	}
}

func seedKey(seed uint64) [32]byte {
	var k [32]byte
	binary.LittleEndian.PutUint64(k[:], seed)
	k[31] = 0x5a
	return k
}

// checkWith reads s to EOF and compares with the sender's SHA-256.
//
// The reader is pipe.Copy (ReadWaiter, pooled frames), io.Copy, or a slow
// one that reads small pieces and pauses, so the writer meets a full
// window and blocks, and the move happens under backpressure.
func checkWith(wg *sync.WaitGroup, errs chan<- error, i int, dir string, s *mux.Stream, want int64, sent <-chan [32]byte, mode uint64) {
	defer wg.Done()
	h := sha256.New()
	var n int64
	var err error
	switch mode % 3 {
	case 0:
		n, err = pipe.Copy(h, s, nil)
	case 1:
		n, err = io.Copy(h, s)
	default:
		n, err = io.CopyBuffer(h, &slowReader{r: s}, make([]byte, 8<<10))
	}
	var got [32]byte
	copy(got[:], h.Sum(nil))
	sum := <-sent
	switch {
	case err != nil:
		errs <- fmt.Errorf("tunnel %d %s: read after %d of %d bytes: %w", i, dir, n, want, err)
	case n != want || got != sum:
		errs <- fmt.Errorf("tunnel %d %s: %d bytes, want %d; sha256 match %v", i, dir, n, want, got == sum)
	}
}

// slowReader pauses after every 64 KiB it reads.
type slowReader struct {
	r io.Reader
	n int
}

func (s *slowReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.n += n
	if s.n >= 64<<10 {
		s.n = 0
		time.Sleep(200 * time.Microsecond) // a slow reader: the writer meets a full window
	}
	return n, err
}

// echoCheck writes n seeded bytes through r to the echo target behind the
// agent, half-closes, and checks the echo.
func echoCheck(r *mux.Stream, n int64, seed uint64) error {
	sent := sha256.New()
	errc := make(chan error, 1)
	go func() {
		src := io.TeeReader(io.LimitReader(rand.NewChaCha8(seedKey(seed)), n), sent)
		_, err := io.Copy(chunkedWriter{r, rand.New(rand.NewPCG(seed, 2))}, src)
		if err == nil {
			err = r.CloseWrite()
		}
		errc <- err
	}()
	got := sha256.New()
	m, err := io.Copy(got, r)
	r.Close()
	if werr := <-errc; werr != nil {
		return fmt.Errorf("write: %w", werr)
	}
	if err != nil {
		return fmt.Errorf("read after %d of %d bytes: %w", m, n, err)
	}
	if m != n || string(sent.Sum(nil)) != string(got.Sum(nil)) {
		return fmt.Errorf("echoed %d bytes of %d; sha256 match %v", m, n, string(sent.Sum(nil)) == string(got.Sum(nil)))
	}
	return nil
}

// echoTarget is a TCP echo on loopback that honours half-close (pipe.Copy
// half-closes when its source ends), as the demo's.
func echoTarget(tb testing.TB) string {
	tb.Helper()
	return testnet.Serve(tb, func(c net.Conn) { pipe.Copy(c, c, nil) }).String()
}

// A dedicated connection the relay refuses (it closes it after the
// preamble, as when its checks fail) costs the tunnel nothing: the agent
// moves only once the relay has accepted, so the refused tunnel carries
// every byte on the shared session.
func TestStreamMoveRefusedStaysShared(t *testing.T) {
	g := newMoveRig(t)
	g.refuse = func(uint32) bool { return true }
	echo := echoTarget(t)
	r, a := g.open(t)
	withDeadline(t, r)
	c, err := net.Dial("tcp", echo)
	if err != nil {
		t.Fatal(err)
	}
	piped := make(chan error, 1)
	go func() { piped <- pipe.Join(a, c, nil, nil) }()
	const n = 8 << 20
	checked := make(chan error, 1)
	go func() { checked <- echoCheck(r, n, 42) }()
	time.Sleep(20 * time.Millisecond) // deliberate: move mid-transfer
	if err := g.move(a); err == nil {
		t.Fatal("move succeeded on a relay that refuses every dedicated connection")
	}
	if err := <-checked; err != nil {
		t.Fatalf("tunnel after a refused move: %v", err)
	}
	if err := <-piped; err != nil {
		t.Fatalf("agent pipe after a refused move: %v", err)
	}
	if a.Dedicated() || r.Dedicated() {
		t.Fatal("a refused tunnel reports a dedicated connection")
	}
}
