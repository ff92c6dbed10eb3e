// MIT License
//
// Copyright (c) 2016-2017 xtaci
//
// Permission is hereby granted, free of charge, to any person obtaining a copy
// of this software and associated documentation files (the "Software"), to deal
// in the Software without restriction, including without limitation the rights
// to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
// copies of the Software, and to permit persons to whom the Software is
// furnished to do so, subject to the following conditions:
//
// The above copyright notice and this permission notice shall be included in all
// copies or substantial portions of the Software.
//
// THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
// IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
// FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
// AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
// LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
// OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
// SOFTWARE.

package smux

import (
	"runtime"
	"sync/atomic"
	"time"
)

// nanodems patch: small frames of concurrent writers share a system call.
//
// In the agent and nanodems-tunnel, each tunnel's socket reader writes
// the chunk it read as a data frame on its own goroutine, and with the
// direct writes of writeFrameInternal every frame was its own write to
// the connection: under 1,000 tunnels echoing 64 B ten times a second,
// 8,500 writes a second for 10,000 frames. The poller wakes many of
// those readers in one round; if a writer yields once between buffering
// its frame and flushing, the others run first and add theirs, and the
// first flush takes them all (docs/perf-peers-changes.md). It yields only
// when others are about (flushAfterYield). The same holds
// for the FIN frames and window updates of tunnels that close or read
// together: with four clients opening and closing connections through
// nanodems-tunnel, relay and agent, the agent's, nanodems-tunnel's and
// the relay's writes per connection fell from 3.7, 4.7 and 6.2 to 2.9,
// 3.7 and 4.2.

// maxBufferedFrame is the most data a write buffered this way carries.
// A bulk frame is written at once: with 64 KiB frames of 64 streams buffered,
// one writer wrote megabytes while every other waited for its buffer,
// and 64-stream throughput fell to 0.58 – 0.77× frp tcp from 1.10×.
const maxBufferedFrame = 4 << 10

// bufferedWriter is a connection that can take a write into its buffer
// and write the buffer later (the connector's coalescing TLS
// connection). Any other write, and Flush, writes what is buffered,
// first.
type bufferedWriter interface {
	WriteBuffered(p []byte) (int, error)
	Flush() error
}

// flushAfterYield lets the goroutines that are ready to run add their
// frames, then writes the buffer if none of them did. A flush that fails
// fails the session's writes, as a failed Write does.
//
// It yields only while other writers are about (yieldState): a yield
// wakes another thread of the runtime (runtime.Gosched puts the writer
// on the global run queue and calls wakep), and a lone writer, one
// message at a time, gains nothing from it: in a 64 B round trip through
// relay, agent and nanodems-tunnel, it was 2 of the agent's 4 context
// switches and 2 of its futex calls per round trip.
func (s *Session) flushAfterYield(bw bufferedWriter) error {
	if s.yield.before() {
		runtime.Gosched()
	}
	s.yield.after()
	if err := bw.Flush(); err != nil {
		s.notifyWriteError(err)
		return err
	}
	return nil
}

// yieldGap: a flush that comes this soon after the session's last one
// yields first. Writers the poller woke in one round flush microseconds
// apart; one message at a time through relay, agent and nanodems-tunnel
// is a round trip apart, 150 µs at the very least on loopback.
// yieldWindow: this many flushes yield after one that found frames of
// another writer beside its own, however far apart.
const (
	yieldGap    = 50 * time.Microsecond
	yieldWindow = 16
)

// yieldState decides whether a buffered write yields before it flushes:
// when the session's last flush was less than yieldGap ago, or while
// flushes keep finding more than one writer's frames in the buffer.
type yieldState struct {
	buffered atomic.Int32 // frames buffered since the last flush
	left     atomic.Int32 // flushes that yield whenever they come
	last     atomic.Int64 // when the last flush was, in ns since epoch
}

// epoch is the origin of yieldState.last, a monotonic clock.
var epoch = time.Now()

func (y *yieldState) before() bool {
	return y.left.Load() > 0 || time.Since(epoch)-time.Duration(y.last.Load()) < yieldGap
}

func (y *yieldState) after() {
	y.last.Store(int64(time.Since(epoch)))
	if y.buffered.Swap(0) > 1 {
		y.left.Store(yieldWindow)
	} else if y.left.Load() > 0 {
		y.left.Add(-1)
	}
}
