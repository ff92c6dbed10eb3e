package main

// procsMeter is the meter of a bridge figure's throughput run: the CPU
// seconds of every process of the run (both relays, the TLS forwarder,
// the agent, the echo target and the harness) over the run, whichever
// path it measures. On a shared machine the MB/s of a path follow the
// other tenants' load; the CPU a byte costs does not, or much less.
type procsMeter struct {
	ps     []*proc
	before float64
}

func (m *procsMeter) total() float64 {
	t := selfCPU()
	for _, p := range m.ps {
		if p != nil {
			v, _ := cpuSeconds(p.pid())
			t += v
		}
	}
	return t
}

func (m *procsMeter) start() { m.before = m.total() }

func (m *procsMeter) stop() map[string]float64 {
	return map[string]float64{"all": m.total() - m.before}
}
