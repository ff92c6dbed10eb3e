package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// meter measures what the processes spend between start and stop: CPU
// seconds per process (keys relay, agent, echo, harness, other) and, with
// -perfstat, kernel counters ("relay syscalls", ...).
type meter interface {
	start()
	stop() map[string]float64
}

// dialFunc opens one connection to the echo target, through the relay or
// directly.
type dialFunc func(ctx context.Context) (net.Conn, error)

type closeWriter interface{ CloseWrite() error }

// dialAll opens n connections with at most par dials in flight.
func dialAll(ctx context.Context, dial dialFunc, n, par int) ([]net.Conn, error) {
	conns := make([]net.Conn, n)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  atomic.Int64
	)
	for w := 0; w < min(par, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				c, err := dial(ctx)
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("connection %d of %d: %w", i+1, n, err)
					}
					mu.Unlock()
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	if first != nil {
		closeAll(conns, par)
		return nil, first
	}
	return conns, nil
}

// closeAll closes conns with par closers (a WebSocket close waits for the
// peer's close frame).
func closeAll(conns []net.Conn, par int) {
	var wg sync.WaitGroup
	var next atomic.Int64
	for w := 0; w < max(1, min(par, len(conns))); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(conns) {
					return
				}
				if conns[i] != nil {
					conns[i].Close()
				}
			}
		}()
	}
	wg.Wait()
}

// ---- throughput ----

// payload is the random bytes every stream is cut from: stream i of a run
// is the pool read cyclically from offset i*streamStride, so concurrent
// streams carry different bytes and a crossed stream fails its hash.
type payload struct {
	pool  []byte
	chunk int // bytes per Write (one WebSocket message on a tunnel)
}

const streamStride = 1<<20 + 4099

// each calls f with consecutive chunks of stream i of size n.
func (p *payload) each(i int, n int64, f func([]byte) error) error {
	off := (i * streamStride) % len(p.pool)
	for n > 0 {
		k := int(min(int64(p.chunk), n, int64(len(p.pool)-off)))
		if err := f(p.pool[off : off+k]); err != nil {
			return err
		}
		off = (off + k) % len(p.pool)
		n -= int64(k)
	}
	return nil
}

// sum is the SHA-256 of stream i of size n.
func (p *payload) sum(i int, n int64) [32]byte {
	h := sha256.New()
	p.each(i, n, func(b []byte) error { h.Write(b); return nil })
	var s [32]byte
	h.Sum(s[:0])
	return s
}

// tpResult is one throughput run.
type tpResult struct {
	Conns    int
	PerConn  int64         // bytes each connection sent (and got back)
	Bytes    int64         // bytes echoed: one direction, all connections
	Dur      time.Duration // first write to last byte read back
	CPU      map[string]float64
	Verified bool
	Moved    int // tunnels the agent moved to dedicated connections during the run
}

// MBps is the echoed bytes per second in MB (10^6 bytes).
func (r tpResult) MBps() float64 { return float64(r.Bytes) / r.Dur.Seconds() / 1e6 }

// throughput opens conns connections, then on each writes perConn bytes
// and reads them back at the same time (one writer and one reader
// goroutine per connection). The wall time runs from the first write to
// the last byte read; both directions are checked with SHA-256. cpu
// samples the subprocesses (and this process) around the timed part.
func throughput(ctx context.Context, dial dialFunc, conns int, perConn int64, p *payload, sums [][32]byte, m meter) (tpResult, error) {
	return throughputEnds(ctx, dial, conns, perConn, p, sums, m, true)
}

// throughputEnds is throughput; with halfClose false the writer does not
// CloseWrite and the reader stops after perConn bytes. frp ends a proxied
// connection as soon as either direction ends, so a half-close there cuts
// the echo still on its way back; the peers figure measures every path
// this way.
func throughputEnds(ctx context.Context, dial dialFunc, conns int, perConn int64, p *payload, sums [][32]byte, m meter, halfClose bool) (tpResult, error) {
	res := tpResult{Conns: conns, PerConn: perConn, Bytes: int64(conns) * perConn}
	cs, err := dialAll(ctx, dial, conns, 16)
	if err != nil {
		return res, err
	}
	defer closeAll(cs, 16)
	// A run must not hang the benchmark: ctx's end, or the first failure,
	// cuts every connection.
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(rctx, func() {
		for _, c := range cs {
			c.Close()
		}
	})
	defer stop()

	m.start()
	var (
		emu   sync.Mutex
		first error
	)
	fail := func(err error) {
		emu.Lock()
		if first == nil {
			first = err
		}
		emu.Unlock()
		cancel()
	}
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range cs {
		wg.Add(2)
		go func() {
			defer wg.Done()
			err := p.each(i, perConn, func(b []byte) error {
				_, err := c.Write(b)
				return err
			})
			if err == nil && halfClose {
				err = c.(closeWriter).CloseWrite()
			}
			if err != nil {
				fail(fmt.Errorf("stream %d: write: %w", i, err))
			}
		}()
		go func() {
			defer wg.Done()
			h := sha256.New()
			buf := make([]byte, 64<<10)
			var r io.Reader = c
			if !halfClose {
				r = io.LimitReader(c, perConn)
			}
			n, err := io.CopyBuffer(h, readerOnly{r}, buf)
			switch {
			case err != nil:
				fail(fmt.Errorf("stream %d: read after %d bytes: %w", i, n, err))
			case n != perConn:
				fail(fmt.Errorf("stream %d: got %d bytes back, sent %d", i, n, perConn))
			case !bytes.Equal(h.Sum(nil), sums[i][:]):
				fail(fmt.Errorf("stream %d: SHA-256 of the bytes read back differs from the bytes sent", i))
			}
		}()
	}
	wg.Wait()
	res.Dur = time.Since(start)
	usage := m.stop()
	if first != nil {
		if ctx.Err() != nil {
			return res, fmt.Errorf("%w (%v)", ctx.Err(), first)
		}
		return res, first
	}
	res.CPU = usage
	res.Verified = true
	return res, nil
}

// readerOnly hides WriterTo/ReaderFrom so io.CopyBuffer uses our buffer.
type readerOnly struct{ io.Reader }

// ---- round trip ----

// rttResult holds sorted round-trip samples.
type rttResult struct {
	Samples []time.Duration
}

func (r rttResult) pct(p float64) time.Duration {
	if len(r.Samples) == 0 {
		return 0
	}
	i := int(p/100*float64(len(r.Samples))+0.5) - 1
	return r.Samples[min(max(i, 0), len(r.Samples)-1)]
}

func (r rttResult) mean() time.Duration {
	var t time.Duration
	for _, s := range r.Samples {
		t += s
	}
	return t / time.Duration(max(1, len(r.Samples)))
}

// pingPong writes size bytes and reads them back, samples times after
// warm-up exchanges, on one connection.
func pingPong(ctx context.Context, dial dialFunc, size, warm, samples int) (rttResult, error) {
	c, err := dial(ctx)
	if err != nil {
		return rttResult{}, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	out := make([]byte, size)
	in := make([]byte, size)
	for i := range out {
		out[i] = byte(i*7 + 1)
	}
	res := rttResult{Samples: make([]time.Duration, 0, samples)}
	for i := 0; i < warm+samples; i++ {
		out[0] = byte(i)
		t0 := time.Now()
		if _, err := c.Write(out); err != nil {
			return res, err
		}
		if _, err := io.ReadFull(c, in); err != nil {
			return res, err
		}
		d := time.Since(t0)
		if !bytes.Equal(in, out) {
			return res, errors.New("round trip: echo differs")
		}
		if i >= warm {
			res.Samples = append(res.Samples, d)
		}
	}
	slices.Sort(res.Samples)
	return res, nil
}

// ---- opens ----

// openResult is a run of connection opens.
type openResult struct {
	Ops     int
	Dur     time.Duration
	Latency rttResult // one open + 1-byte round trip + close
	CPU     map[string]float64
}

func (r openResult) perSec() float64 { return float64(r.Ops) / r.Dur.Seconds() }

// opens runs par openers for dur (or until maxOps): each opens a
// connection, does a 1-byte round trip and closes it.
func opens(ctx context.Context, dial dialFunc, par int, dur time.Duration, maxOps int, m meter) (openResult, error) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		ops   atomic.Int64
		lat   []time.Duration
	)
	m.start()
	deadline := time.Now().Add(dur)
	start := time.Now()
	for w := 0; w < par; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			defer func() {
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			}()
			b := []byte{0}
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if ops.Add(1) > int64(maxOps) {
					return
				}
				t0 := time.Now()
				err := openOnce(ctx, dial, b)
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(t0))
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	usage := m.stop()
	if first == nil {
		first = ctx.Err()
	}
	slices.Sort(lat)
	return openResult{Ops: len(lat), Dur: d, Latency: rttResult{Samples: lat}, CPU: usage}, first
}

func openOnce(ctx context.Context, dial dialFunc, b []byte) error {
	c, err := dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(b); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	return nil
}

// ---- idle tunnels ----

// openIdle opens k connections with par openers; each does a 1-byte round
// trip so the whole path (relay stream, agent dial, target) is up.
func openIdle(ctx context.Context, dial dialFunc, k, par int) ([]net.Conn, error) {
	cs, err := dialAll(ctx, func(ctx context.Context) (net.Conn, error) {
		c, err := dial(ctx)
		if err != nil {
			return nil, err
		}
		b := []byte{42}
		_, err = c.Write(b)
		if err == nil {
			_, err = io.ReadFull(c, b)
		}
		if err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}, k, par)
	return cs, err
}
