package stats

import (
	"sync/atomic"

	"github.com/nanodems/connector/mux"
)

// Totals are a port's running counts.
type Totals = mux.StatTotals

// Counter takes the bytes one device port moved: in from the device
// toward the relay, out from the relay toward the device (TCP or UDP
// payload). It is the one seam byte sources share: the userspace copy
// loop adds a tunnel's bytes, a kernel source (eBPF) may add the bytes it
// counted for the port instead. Add is safe for concurrent use.
type Counter interface {
	Add(in, out uint64)
}

// Result is how a tunnel's open ended, as the agent answered the relay.
type Result int

const (
	Opened      Result = iota // dialled, the tunnel carries bytes
	Refused                   // the device refused the connection
	Unreachable               // no route, no answer, timed out, bad name
	NotAllowed                // not in the allowlist, or a local address
)

// Port is the counters of one device port. It is a Counter.
type Port struct {
	Host string
	Port uint16

	in, out   atomic.Uint64
	opened    [4]atomic.Uint64 // by Result
	dedicated atomic.Uint64
	active    atomic.Int64
	// Under Set.mu: the totals when this boot started, and at the start
	// of day (a "2006-01-02" UTC date).
	base, day0 Totals
	day        string
}

// Add counts bytes moved to and from the port.
func (p *Port) Add(in, out uint64) {
	p.in.Add(in)
	p.out.Add(out)
}

// Open counts a tunnel's open by its result.
func (p *Port) Open(r Result) {
	if r >= Opened && r <= NotAllowed {
		p.opened[r].Add(1)
	}
}

// Begin counts a tunnel that starts carrying bytes; the returned func
// ends it.
func (p *Port) Begin() (end func()) {
	p.active.Add(1)
	return func() { p.active.Add(-1) }
}

// Moved counts a tunnel moved to a dedicated connection.
func (p *Port) Moved() { p.dedicated.Add(1) }

// totals reads the port's running totals.
func (p *Port) totals() Totals {
	return Totals{
		BytesIn: p.in.Load(), BytesOut: p.out.Load(),
		OpenedOK: p.opened[Opened].Load(), Refused: p.opened[Refused].Load(),
		Unreachable: p.opened[Unreachable].Load(), NotAllowed: p.opened[NotAllowed].Load(),
		Dedicated: p.dedicated.Load(),
	}
}

// set restores totals loaded from the state file.
func (p *Port) set(t Totals) {
	p.in.Store(t.BytesIn)
	p.out.Store(t.BytesOut)
	p.opened[Opened].Store(t.OpenedOK)
	p.opened[Refused].Store(t.Refused)
	p.opened[Unreachable].Store(t.Unreachable)
	p.opened[NotAllowed].Store(t.NotAllowed)
	p.dedicated.Store(t.Dedicated)
}
