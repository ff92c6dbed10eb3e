package rtsp

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// packet is one interleaved frame read from a camera, shared by every
// viewer of the session: it is copied once out of the camera's read
// buffer and then only referenced, so a packet costs the same whether ten
// or five hundred viewers get it. The last reference returns it to the
// pool.
type packet struct {
	refs atomic.Int32
	buf  []byte // '$' ch len payload, as the camera sent it
}

// Frames up to this size come from the pool; RTP packets of cameras stay
// under the MTU, so nearly all do.
const poolFrame = 2048

var packetPool = sync.Pool{New: func() any { return &packet{buf: make([]byte, 0, poolFrame)} }}

func newPacket(frame []byte) *packet {
	var p *packet
	if len(frame) <= poolFrame {
		p = packetPool.Get().(*packet)
		p.buf = append(p.buf[:0], frame...)
	} else {
		p = &packet{buf: append([]byte(nil), frame...)}
	}
	p.refs.Store(1)
	return p
}

func (p *packet) ref() { p.refs.Add(1) }

func (p *packet) release() {
	if p.refs.Add(-1) == 0 && cap(p.buf) == poolFrame {
		packetPool.Put(p)
	}
}

func (p *packet) payload() []byte { return p.buf[FrameHeaderLen:] }

// outItem is one queued write: owned bytes, or a shared packet to go out
// on a channel.
type outItem struct {
	b      []byte
	pooled bool // b came from writePools
	p      *packet
	ch     byte
}

// writePools hold the copies write makes (messages, pass-through batches
// of camera frames) in three size classes, so a 4 Mbit/s pass-through
// stream does not allocate per frame and a 20 KB batch does not pin a
// 64 KiB buffer while it waits in a queue.
var writePools = [3]sync.Pool{
	{New: func() any { b := make([]byte, 0, 2<<10); return &b }},
	{New: func() any { b := make([]byte, 0, 16<<10); return &b }},
	{New: func() any { b := make([]byte, 0, batchSize); return &b }},
}

func poolClass(n int) int {
	switch {
	case n <= 2<<10:
		return 0
	case n <= 16<<10:
		return 1
	}
	return 2
}

// batchSize bounds a batch of pass-through frames: one camera read's worth.
const batchSize = 64 << 10

// pooledBuf returns an empty buffer of batchSize from the pool.
func pooledBuf() []byte { return (*writePools[2].Get().(*[]byte))[:0] }

// ownCopy copies b into a pooled buffer when it fits one.
func ownCopy(b []byte) outItem {
	if len(b) > batchSize {
		return outItem{b: append([]byte(nil), b...)}
	}
	bp := writePools[poolClass(len(b))].Get().(*[]byte)
	return outItem{b: append((*bp)[:0], b...), pooled: true}
}

func (it outItem) size() int {
	if it.p != nil {
		return len(it.p.buf)
	}
	return len(it.b)
}

// output is the client side of a connection as the protocol code sees
// it. Implementations: stdOutput (goroutine per connection) and
// gnetOutput (event loops).
type output interface {
	// write queues a copy of b (messages, pass-through frames) and blocks
	// while the connection's backlog is over its limit: the camera reader
	// that calls it then stops reading, and the tunnel's flow control
	// slows the camera.
	write(b []byte) error
	// writeOwned is write for a buffer from writePools that the output
	// now owns (a pass-through batch): no copy.
	writeOwned(b []byte) error
	// enqueue queues a shared packet for channel ch without ever
	// blocking; full (and no reference taken) when the backlog is over
	// limit. Fan-out calls it for every viewer of a packet.
	enqueue(p *packet, ch byte, limit int) enqueueResult
	// kick starts writing what enqueue queued. The packet path queues a
	// camera read's worth of packets for every viewer and kicks each once,
	// so a viewer costs one wakeup and one writev per camera read, not
	// per packet.
	kick()
	// close closes the connection; queued items are dropped.
	close()
}

type enqueueResult int

const (
	queued enqueueResult = iota
	full                 // over the backlog: the viewer is behind
	gone                 // the connection is closed
)

// appendItems turns queued items into a writev batch. Packets going out
// on the camera's channel are sent as they came, header included;
// others get a 4-byte header from hdr.
func appendItems(bufs net.Buffers, hdr []byte, items []outItem) (net.Buffers, []byte) {
	for _, it := range items {
		switch {
		case it.p == nil:
			bufs = append(bufs, it.b)
		case it.p.buf[1] == it.ch:
			bufs = append(bufs, it.p.buf)
		default:
			n := len(hdr)
			hdr = AppendFrameHeader(hdr, it.ch, len(it.p.buf)-FrameHeaderLen)
			bufs = append(bufs, hdr[n:n+FrameHeaderLen:n+FrameHeaderLen], it.p.payload())
		}
	}
	return bufs, hdr
}

func releaseItems(items []outItem) {
	for i, it := range items {
		if it.p != nil {
			it.p.release()
		}
		if it.pooled {
			b := it.b[:0]
			writePools[poolClass(cap(b))].Put(&b)
		}
		items[i] = outItem{}
	}
}

// stdOutput writes a net.Conn from one writer goroutine, which drains the
// whole queue with one writev per round: a viewer's packets batch up by
// themselves while the previous write is in the kernel.
type stdOutput struct {
	nc        net.Conn
	limit     int
	dropAfter time.Duration
	drops     *atomic.Int64 // counts connections ended by the write deadline

	mu      sync.Mutex
	cond    sync.Cond
	q       []outItem
	qBytes  int
	closed  bool      // no more writes; the writer finishes the queue, then closes
	closeBy time.Time // how long finishing may take
	started bool
	done    bool // nc closed
}

// closeGrace is how long a closing connection may take to send what was
// queued before it (an error answer, a last packet).
const closeGrace = time.Second

func newStdOutput(nc net.Conn, limit int, dropAfter time.Duration) *stdOutput {
	o := &stdOutput{nc: nc, limit: limit, dropAfter: dropAfter}
	o.cond.L = &o.mu
	return o
}

func (o *stdOutput) start(goFn func(func())) {
	o.mu.Lock()
	o.started = true
	o.mu.Unlock()
	goFn(o.run)
}

func (o *stdOutput) write(b []byte) error { return o.writeItem(ownCopy(b)) }

func (o *stdOutput) writeOwned(b []byte) error { return o.writeItem(outItem{b: b, pooled: true}) }

func (o *stdOutput) writeItem(it outItem) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for !o.closed && o.qBytes > o.limit {
		o.cond.Wait()
	}
	if o.closed {
		releaseItems([]outItem{it})
		return net.ErrClosed
	}
	o.q = append(o.q, it)
	o.qBytes += len(it.b)
	o.cond.Broadcast()
	return nil
}

func (o *stdOutput) enqueue(p *packet, ch byte, limit int) enqueueResult {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return gone
	}
	if o.qBytes > limit {
		return full
	}
	p.ref()
	o.q = append(o.q, outItem{p: p, ch: ch})
	o.qBytes += len(p.buf)
	return queued
}

func (o *stdOutput) kick() {
	o.mu.Lock()
	if len(o.q) > 0 {
		o.cond.Broadcast()
	}
	o.mu.Unlock()
}

// drain waits until everything queued is written, at most d.
func (o *stdOutput) drain(d time.Duration) {
	t := time.AfterFunc(d, func() {
		o.mu.Lock()
		o.cond.Broadcast()
		o.mu.Unlock()
	})
	defer t.Stop()
	deadline := time.Now().Add(d)
	o.mu.Lock()
	for !o.done && o.qBytes > 0 && time.Now().Before(deadline) {
		o.cond.Wait()
	}
	o.mu.Unlock()
}

// close stops new writes; what is queued still goes out (an answer just
// written before the close, as after three refused grants), for at most
// closeGrace, then the connection closes.
func (o *stdOutput) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return
	}
	o.closed = true
	o.closeBy = time.Now().Add(closeGrace)
	// qBytes, not len(q): run takes the queue whole before it writes, so
	// an empty queue may still have a batch on its way (an RTCP BYE just
	// before a give-up's close), which closing now would cut.
	if !o.started || o.qBytes == 0 {
		o.finishLocked()
	} else {
		o.nc.SetWriteDeadline(o.closeBy)
	}
	o.cond.Broadcast()
}

func (o *stdOutput) finishLocked() {
	if !o.done {
		o.done = true
		o.nc.Close()
		releaseItems(o.q)
		o.q = nil
	}
}

func (o *stdOutput) run() {
	var bufs net.Buffers
	var hdr []byte
	var batch []outItem
	for {
		o.mu.Lock()
		for !o.closed && len(o.q) == 0 {
			o.cond.Wait()
		}
		if o.done || (o.closed && len(o.q) == 0) {
			o.finishLocked()
			o.cond.Broadcast()
			o.mu.Unlock()
			releaseItems(batch)
			return
		}
		batch, o.q = o.q, batch[:0]
		deadline := time.Now().Add(o.dropAfter)
		if o.closed {
			deadline = o.closeBy
		}
		o.mu.Unlock()

		bufs, hdr = appendItems(bufs[:0], hdr[:0], batch)
		n := 0
		for _, it := range batch {
			n += it.size()
		}
		// A viewer that accepts nothing for dropAfter is gone; the
		// deadline ends the write and with it the connection.
		o.nc.SetWriteDeadline(deadline)
		wb := bufs // WriteTo consumes its receiver; keep bufs for reuse
		_, err := wb.WriteTo(o.nc)
		releaseItems(batch)
		clear(bufs)
		o.mu.Lock()
		o.qBytes -= n
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() && !o.closed && o.drops != nil {
				o.drops.Add(1)
			}
			o.closed = true
			o.finishLocked() // the reader's Read fails next, and the connection ends
		}
		o.cond.Broadcast()
		o.mu.Unlock()
	}
}
