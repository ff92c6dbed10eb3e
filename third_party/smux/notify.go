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
// receive loop (under its stream lock) or on the closing goroutine, so
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
