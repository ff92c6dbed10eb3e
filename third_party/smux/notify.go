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
	"io"
	"sync/atomic"
)

// nanodems patch: read notifications (PATCHES.md).
//
// A relay joins a stream of one session to a stream of another. With a
// goroutine blocked in Read per direction, 1,000 idle tunnels held 2,000
// goroutines whose stacks had grown to 8 KiB in the TLS write path and
// never shrank back (the runtime halves a parked stack only when a
// quarter of it is free): 15 KiB of the relay's 21 KiB per tunnel
// (docs/perf-peers-changes.md). With a notification the reader needs no
// goroutine while nothing is buffered: it runs one when the notification
// comes and lets it end when ReadReady turns false.

// SetReadNotify sets fn to be called whenever a Read blocked on s would
// wake: data pushed, the peer's FIN, Close, the session's closing or a
// read or protocol error of its connection. fn runs on the session's
// receive loop (possibly under its stream lock) or on the closing goroutine, so
// it must not block and must not call into the session. A notification
// may be spurious; one that came before SetReadNotify is not repeated,
// so callers check ReadReady after setting fn. A nil fn removes it.
func (s *Stream) SetReadNotify(fn func()) {
	if fn == nil {
		s.readNotify.Store(nil)
		return
	}
	s.readNotify.Store(&fn)
}

// ReadReady reports whether a Read would return without waiting: bytes
// are buffered, or the stream has ended (FIN, Close, the session's
// death or error). It ignores read deadlines.
func (s *Stream) ReadReady() bool {
	s.bufferLock.Lock()
	n := s.bufferRing.len()
	s.bufferLock.Unlock()
	if n > 0 {
		return true
	}
	select {
	case <-s.chFinEvent:
		return true
	case <-s.die:
		return true
	case <-s.sess.chSocketReadError:
		return true
	case <-s.sess.chProtoError:
		return true
	default:
		return false
	}
}

// SetDataNotify sets fn to be called, instead of the read notification,
// when the session's receive loop has buffered bytes for s. fn runs on
// that loop with no lock held: it may TryRead s and write what it reads
// where a write cannot wait (a socket's non-blocking write), and must
// hand anything that could wait to another goroutine, since every stream
// of the session waits while it runs. The other wake-ups (FIN, Close,
// the session's end) still come through SetReadNotify's fn. A nil fn
// removes it.
//
// Why: a pump started by a read notification is a goroutine start and a
// wake-up of another thread for every chunk a tunnel receives; the
// agent and nanodems-tunnel write a chunk to a local socket, which does
// not wait, on the loop that received it (docs/perf-peers-changes.md).
func (s *Stream) SetDataNotify(fn func()) {
	if fn == nil {
		s.dataNotify.Store(nil)
		return
	}
	s.dataNotify.Store(&fn)
}

// TryRead reads buffered bytes without waiting. It returns ErrWouldBlock
// when none are buffered, also after the peer's FIN (ReadReady tells the
// FIN apart), and io.EOF once s is closed or its session is gone. A
// window update it makes due leaves on a new goroutine, so TryRead never
// waits for the connection.
func (s *Stream) TryRead(b []byte) (int, error) {
	if s.sess.config.Version == 2 {
		return s.tryReadV2(b, true)
	}
	return s.tryReadV1(b)
}

// wakeupData wakes the reader for bytes just buffered, through the data
// notification if one is set.
func (s *stream) wakeupData() {
	select {
	case s.chReaderWakeup <- struct{}{}:
	default:
	}
	if fn := s.dataNotify.Load(); fn != nil {
		(*fn)()
		return
	}
	s.notifyReader()
}

func (s *stream) notifyReader() {
	if fn := s.readNotify.Load(); fn != nil {
		(*fn)()
	}
}

// notifyReaders notifies every stream's reader, for an error of the
// session's connection (Close notifies them through sessionClose).
func (s *Session) notifyReaders() {
	s.streamLock.Lock()
	defer s.streamLock.Unlock()
	for _, st := range s.streams {
		st.notifyReader()
	}
}

// TryWrite writes b as one data frame if that needs no waiting: b fits in
// a frame and in the peer's window for s, no other write is in progress
// or queued, and the session's connection says it takes the frame at
// once (a WriteWouldWait(n int) bool method; a connection without one is
// never written this way). Otherwise it writes nothing and reports false.
// An error after the frame was handed to the connection reports true.
//
// loop, if not nil, is the stream b was read from, and the caller runs on
// the receive loop of loop's session: if s's connection has a
// WriteHeld(p []byte, loop io.Reader) (int, error) method, the frame may
// wait in that connection's buffer until loop's session next reads its
// connection (or waits for anything else: the receive loop then calls
// its connection's FlushHeld), so that the frames one read delivered
// leave in one system call.
//
// Why: the relay forwards a chunk from one session's stream to another
// session's on the receive loop that delivered it, instead of starting a
// goroutine per chunk; that loop must never wait for the other session
// (docs/perf-peers-changes.md).
func (s *Stream) TryWrite(b []byte, loop *Stream) (bool, error) {
	if len(b) == 0 || len(b) > s.frameSize || s.sess.config.Version != 2 {
		return false, nil
	}
	if err := s.checkWriteClosed(); err != nil {
		return false, err
	}
	ww, ok := s.sess.conn.(interface{ WriteWouldWait(n int) bool })
	if !ok {
		return false, nil
	}
	inflight := int32(atomic.LoadUint32(&s.numWritten) - atomic.LoadUint32(&s.peerConsumed))
	if inflight < 0 {
		return false, ErrConsumed
	}
	if win := int32(atomic.LoadUint32(&s.peerWindow)) - inflight; int64(win) < int64(len(b)) {
		return false, nil
	}
	if s.sess.queued.Load() != 0 || !s.sess.wmu.TryLock() {
		return false, nil
	}
	defer s.sess.wmu.Unlock()
	if s.sess.queued.Load() != 0 || ww.WriteWouldWait(len(b)+2*headerSize+szCmdUPD) {
		return false, nil
	}
	var before io.Reader
	if loop != nil {
		before = loop.sess.conn
	}
	frame := newFrame(byte(s.sess.config.Version), cmdPSH, s.id)
	frame.data = b
	var err error
	if upd, owed := s.owedUpdate(); owed {
		err = s.sess.writeFrames(nil, before, upd, frame)
	} else {
		err = s.sess.writeFrames(nil, before, frame)
	}
	atomic.AddUint32(&s.numWritten, uint32(len(b)))
	return true, err
}

// heldWriter is a connection that can hold a write until a receive loop
// reads (TryWrite).
type heldWriter interface {
	WriteHeld(p []byte, loop io.Reader) (int, error)
}

// flushHeld writes what other sessions' connections hold until this
// session's receive loop reads: the loop calls it before it waits for
// anything but its connection, and when it ends.
func (s *Session) flushHeld() {
	if f, ok := s.conn.(interface{ FlushHeld() }); ok {
		f.FlushHeld()
	}
}
