package rtsp

import (
	"sync"
)

// udpSender sends a UDP viewer's packets from one goroutine, so the
// packet path only queues.
type udpSender struct {
	mu     sync.Mutex
	cond   sync.Cond
	q      []udpItem
	qBytes int
	closed bool
}

type udpItem struct {
	p    *packet
	pair *udpPair
	rtcp bool
}

func newUDPSender(g *Gateway) *udpSender {
	u := &udpSender{}
	u.cond.L = &u.mu
	g.goFn(u.run)
	return u
}

func (u *udpSender) enqueue(p *packet, pair *udpPair, rtcp bool, limit int) enqueueResult {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return gone
	}
	if u.qBytes > limit {
		return full
	}
	p.ref()
	u.q = append(u.q, udpItem{p, pair, rtcp})
	u.qBytes += len(p.buf)
	return queued
}

func (u *udpSender) kick() {
	u.mu.Lock()
	if len(u.q) > 0 {
		u.cond.Signal()
	}
	u.mu.Unlock()
}

func (u *udpSender) run() {
	var batch []udpItem
	for {
		u.mu.Lock()
		for !u.closed && len(u.q) == 0 {
			u.cond.Wait()
		}
		if u.closed {
			for _, it := range u.q {
				it.p.release()
			}
			u.q = nil
			u.mu.Unlock()
			return
		}
		batch, u.q = u.q, batch[:0]
		u.mu.Unlock()
		n := 0
		for i, it := range batch {
			it.pair.send(it.rtcp, it.p.payload())
			n += len(it.p.buf)
			it.p.release()
			batch[i] = udpItem{}
		}
		u.mu.Lock()
		u.qBytes -= n
		u.mu.Unlock()
	}
}

func (u *udpSender) close() {
	u.mu.Lock()
	u.closed = true
	u.cond.Signal()
	u.mu.Unlock()
}
