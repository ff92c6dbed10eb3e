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
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

const (
	defaultAcceptBacklog = 1024
	minShaperNotifySize  = 16
	maxShaperSize        = 1024
	openCloseTimeout     = 30 * time.Second // Timeout for opening/closing streams
)

// resultChanPool reduces allocation of result channels
var resultChanPool = sync.Pool{
	New: func() any {
		return make(chan writeResult, 1)
	},
}

// CLASSID represents the class of a frame
type CLASSID int

const (
	CLSCTRL CLASSID = iota // prioritized control signal
	CLSDATA
)

// timeoutError representing timeouts for operations such as accept, read and write
//
// To better cooperate with the standard library, timeoutError should implement the standard library's `net.Error`.
//
// For example, using smux to implement net.Listener and work with http.Server, the keep-alive connection (*smux.Stream) will be unexpectedly closed.
// For more details, see https://github.com/xtaci/smux/pull/99.
type timeoutError struct{}

func (timeoutError) Error() string   { return "timeout" }
func (timeoutError) Temporary() bool { return true }
func (timeoutError) Timeout() bool   { return true }

var (
	ErrInvalidProtocol           = errors.New("invalid protocol")
	ErrConsumed                  = errors.New("peer consumed more than sent")
	ErrGoAway                    = errors.New("stream id overflows, should start a new connection")
	ErrTimeout         net.Error = &timeoutError{}
	ErrWouldBlock                = errors.New("operation would block on IO")
)

// writeRequest represents a request to write a frame
type writeRequest struct {
	class  CLASSID
	frame  Frame
	seq    uint32
	result chan writeResult
}

// writeResult represents the result of a write request
type writeResult struct {
	n   int
	err error
}

// Session defines a multiplexed connection for streams
type Session struct {
	conn io.ReadWriteCloser

	config           *Config
	goAway           int32  // flag id exhausted
	nextStreamID     uint32 // next stream identifier
	nextStreamIDLock sync.Mutex

	bucket       int32         // token bucket
	bucketNotify chan struct{} // used for waiting for tokens

	streams    map[uint32]*stream // all streams in this session
	streamLock sync.Mutex         // locks streams

	die     chan struct{} // flag session has died
	dieOnce sync.Once
	closed  int32 // atomic flag for fast IsClosed check

	// socket error handling
	socketReadError      atomic.Value
	socketWriteError     atomic.Value
	chSocketReadError    chan struct{}
	chSocketWriteError   chan struct{}
	socketReadErrorOnce  sync.Once
	socketWriteErrorOnce sync.Once

	// smux protocol errors
	protoError     atomic.Value
	chProtoError   chan struct{}
	protoErrorOnce sync.Once

	chAccepts chan *stream

	sessionIsActive int32        // flag session is active
	acceptDeadline  atomic.Value // deadline for Accept()

	requestID uint32            // Monotonic increasing write request ID
	shaper    chan writeRequest // a shaper for writing

	// nanodems patch: direct writes (see writeFrameInternal).
	wmu              sync.Mutex   // held while frames are written to conn
	queued           atomic.Int64 // requests handed to the shaper and not yet written
	buffering        bool         // under wmu: the frame being written may stay in conn's buffer (writeFrameInternal)
	yield            yieldState   // whether a buffered write yields before its flush (flush.go)
	sq               *shaperQueue
	chShaperPending  chan struct{}
	chShaperConsumed chan struct{}
}

func newSession(config *Config, conn io.ReadWriteCloser, client bool) *Session {
	s := new(Session)
	s.die = make(chan struct{})
	s.conn = conn
	s.config = config
	s.streams = make(map[uint32]*stream)
	s.chAccepts = make(chan *stream, defaultAcceptBacklog)
	s.bucket = int32(config.MaxReceiveBuffer)
	s.bucketNotify = make(chan struct{}, 1)
	s.shaper = make(chan writeRequest, maxShaperSize)
	s.chSocketReadError = make(chan struct{})
	s.chSocketWriteError = make(chan struct{})
	s.chProtoError = make(chan struct{})
	s.chShaperPending = make(chan struct{}, 1)
	s.chShaperConsumed = make(chan struct{}, 1)
	s.sq = NewShaperQueue()

	if client {
		s.nextStreamID = 1
	} else {
		s.nextStreamID = 0
	}

	go s.shaperLoop()
	go s.recvLoop()
	go s.sendLoop()
	if !config.KeepAliveDisabled {
		go s.keepalive()
	}
	return s
}

// OpenStream is used to create a new stream
func (s *Session) OpenStream() (*Stream, error) {
	return s.OpenStreamWith(nil)
}

// OpenStreamWith is OpenStream with the stream's first bytes: when they fit
// one frame, the SYN and a data frame carrying them leave in one write
// (nanodems patch). A tunnel's first bytes are always its header, so an
// open costs the session one write and the peer one read instead of two.
func (s *Session) OpenStreamWith(first []byte) (*Stream, error) {
	if s.IsClosed() {
		return nil, io.ErrClosedPipe
	}

	// generate stream id
	s.nextStreamIDLock.Lock()
	if s.goAway > 0 {
		s.nextStreamIDLock.Unlock()
		return nil, ErrGoAway
	}

	// check for stream id overflow
	if s.nextStreamID+2 < s.nextStreamID {
		s.goAway = 1
		s.nextStreamIDLock.Unlock()
		return nil, ErrGoAway
	}

	// allocate next stream id
	s.nextStreamID += 2
	sid := s.nextStreamID
	s.nextStreamIDLock.Unlock()

	stream := newStream(sid, s.config.MaxFrameSize, s)

	syn := newFrame(byte(s.config.Version), cmdSYN, sid)
	if len(first) > 0 && len(first) <= s.config.MaxFrameSize && len(first) <= initialPeerWindow {
		// The peer may answer the first bytes at once: the stream must be
		// known before they leave, or the answer would find no stream.
		wrapper, err := s.register(sid, stream)
		if err != nil {
			return nil, err
		}
		psh := newFrame(byte(s.config.Version), cmdPSH, sid)
		psh.data = first
		atomic.AddUint32(&stream.numWritten, uint32(len(first)))
		if err := s.writeOpening(syn, psh); err != nil {
			s.streamClosed(sid)
			return nil, err
		}
		return wrapper, nil
	}
	if _, err := s.writeControlFrame(syn); err != nil {
		return nil, err
	}
	wrapper, err := s.register(sid, stream)
	if err != nil {
		return nil, err
	}
	if len(first) > 0 { // too large for one frame: written as any data
		if _, err := wrapper.Write(first); err != nil {
			return nil, err
		}
	}
	return wrapper, nil
}

// register adds an opened stream to the session, unless the session died.
func (s *Session) register(sid uint32, stream *stream) (*Stream, error) {
	s.streamLock.Lock()
	defer s.streamLock.Unlock()
	select {
	case <-s.chSocketReadError:
		return nil, s.socketReadError.Load().(error)
	case <-s.chSocketWriteError:
		return nil, s.socketWriteError.Load().(error)
	case <-s.die:
		return nil, io.ErrClosedPipe
	default:
		s.streams[sid] = stream
		// Unlike an accepted Stream, an opened one has no finalizer to
		// close it if its caller drops it: upstream disabled that one.
		return &Stream{stream: stream}, nil
	}
}

// writeOpening writes a stream's SYN and first data frame: in one write
// when the connection is free (see writeFrameInternal), else one after the
// other through the shaper.
func (s *Session) writeOpening(syn, psh Frame) error {
	if done, err := s.writeNow(nil, syn, psh); done {
		return err
	}
	if _, err := s.writeControlFrame(syn); err != nil {
		return err
	}
	timer := time.NewTimer(openCloseTimeout)
	defer timer.Stop()
	_, err := s.writeFrameQueued(psh, timer.C, CLSDATA)
	return err
}

// Open returns a generic ReadWriteCloser
func (s *Session) Open() (io.ReadWriteCloser, error) {
	return s.OpenStream()
}

// AcceptStream is used to block until the next available stream
// is ready to be accepted.
func (s *Session) AcceptStream() (*Stream, error) {
	var deadline <-chan time.Time
	if d, ok := s.acceptDeadline.Load().(time.Time); ok && !d.IsZero() {
		timer := time.NewTimer(time.Until(d))
		defer timer.Stop()
		deadline = timer.C
	}

	select {
	case stream := <-s.chAccepts:
		wrapper := &Stream{stream: stream}
		runtime.SetFinalizer(wrapper, func(s *Stream) {
			s.Close()
		})
		return wrapper, nil
	case <-deadline:
		return nil, ErrTimeout
	case <-s.chSocketReadError:
		return nil, s.socketReadError.Load().(error)
	case <-s.chProtoError:
		return nil, s.protoError.Load().(error)
	case <-s.die:
		return nil, io.ErrClosedPipe
	}
}

// Accept Returns a generic ReadWriteCloser instead of smux.Stream
func (s *Session) Accept() (io.ReadWriteCloser, error) {
	return s.AcceptStream()
}

// Close is used to close the session and all streams.
func (s *Session) Close() error {
	var once bool
	s.dieOnce.Do(func() {
		atomic.StoreInt32(&s.closed, 1)
		close(s.die)
		once = true
	})

	if !once {
		return io.ErrClosedPipe
	}

	s.streamLock.Lock()
	for k := range s.streams {
		s.streams[k].sessionClose()
	}
	s.streamLock.Unlock()
	return s.conn.Close()
}

// CloseChan can be used by someone who wants to be notified immediately when this
// session is closed
func (s *Session) CloseChan() <-chan struct{} {
	return s.die
}

// notifyBucket notifies recvLoop that bucket is available
func (s *Session) notifyBucket() {
	select {
	case s.bucketNotify <- struct{}{}:
	default:
	}
}

func (s *Session) notifyReadError(err error) {
	s.socketReadErrorOnce.Do(func() {
		s.socketReadError.Store(err)
		close(s.chSocketReadError)
		s.notifyReaders() // nanodems patch
	})
}

func (s *Session) notifyWriteError(err error) {
	s.socketWriteErrorOnce.Do(func() {
		s.socketWriteError.Store(err)
		close(s.chSocketWriteError)
	})
}

func (s *Session) notifyProtoError(err error) {
	s.protoErrorOnce.Do(func() {
		s.protoError.Store(err)
		close(s.chProtoError)
		s.notifyReaders() // nanodems patch
	})
}

// IsClosed does a safe check to see if we have shutdown
func (s *Session) IsClosed() bool {
	return atomic.LoadInt32(&s.closed) != 0
}

// NumStreams returns the number of currently open streams
func (s *Session) NumStreams() int {
	if s.IsClosed() {
		return 0
	}
	s.streamLock.Lock()
	defer s.streamLock.Unlock()
	return len(s.streams)
}

// SetDeadline sets a deadline used by Accept* calls.
// A zero time value disables the deadline.
func (s *Session) SetDeadline(t time.Time) error {
	s.acceptDeadline.Store(t)
	return nil
}

// LocalAddr satisfies net.Conn interface
func (s *Session) LocalAddr() net.Addr {
	if ts, ok := s.conn.(interface {
		LocalAddr() net.Addr
	}); ok {
		return ts.LocalAddr()
	}
	return nil
}

// RemoteAddr satisfies net.Conn interface
func (s *Session) RemoteAddr() net.Addr {
	if ts, ok := s.conn.(interface {
		RemoteAddr() net.Addr
	}); ok {
		return ts.RemoteAddr()
	}
	return nil
}

// notify the session that a stream has closed
func (s *Session) streamClosed(sid uint32) {
	s.streamLock.Lock()
	defer s.streamLock.Unlock()

	stream, ok := s.streams[sid]
	if !ok {
		return
	}

	if n := stream.recycleTokens(); n > 0 {
		// return remaining tokens to the bucket
		if atomic.AddInt32(&s.bucket, int32(n)) > 0 {
			s.notifyBucket()
		}
	}
	delete(s.streams, sid)
}

// returnTokens is called by stream to return token after read
func (s *Session) returnTokens(n int) {
	if atomic.AddInt32(&s.bucket, int32(n)) > 0 {
		s.notifyBucket()
	}
}

// recvLoop keeps on reading from underlying connection if tokens are available
func (s *Session) recvLoop() {
	var hdr rawHeader
	var updHdr updHeader
	// nanodems patch: writes held for this loop leave before it waits
	// for anything but its connection, and when it ends (TryWrite).
	defer s.flushHeld()

	for {
		// Wait until we have tokens or session is closed.
		for atomic.LoadInt32(&s.bucket) <= 0 && !s.IsClosed() {
			s.flushHeld()
			select {
			case <-s.bucketNotify:
			case <-s.die:
				// If it returns here, Accept() and OpenStream() are unblocked with io.ErrClosedPipe,
				// causing recvLoop to exit gracefully. If recvLoop is blocked in io.ReadFull, however,
				// it will be unblocked by a socket read error instead.
				return
			}
		}

		// As long as we have tokens, try to read frames.
		// read header first
		_, err := io.ReadFull(s.conn, hdr[:])
		if err != nil {
			s.notifyReadError(err)
			return
		}

		// Mark the session as active
		atomic.StoreInt32(&s.sessionIsActive, 1)

		// validate protocol version
		if hdr.Version() != byte(s.config.Version) {
			s.notifyProtoError(ErrInvalidProtocol)
			return
		}

		// handle different command types
		sid := hdr.StreamID()
		switch hdr.Cmd() {
		case cmdNOP:
			if hdr.Length() != 0 {
				s.notifyProtoError(ErrInvalidProtocol)
				return
			}
		case cmdSYN: // stream opening
			if hdr.Length() != 0 {
				s.notifyProtoError(ErrInvalidProtocol)
				return
			}
			var accepted *stream
			s.streamLock.Lock()
			if _, ok := s.streams[sid]; !ok {
				stream := newStream(sid, s.config.MaxFrameSize, s)
				s.streams[sid] = stream
				accepted = stream
			}
			s.streamLock.Unlock()

			if accepted != nil {
				select {
				case s.chAccepts <- accepted:
				default:
					s.flushHeld()
					select {
					case s.chAccepts <- accepted:
					case <-s.die:
					}
				}
			}

		case cmdFIN: // stream closing
			if hdr.Length() != 0 {
				s.notifyProtoError(ErrInvalidProtocol)
				return
			}
			s.streamLock.Lock()
			st := s.streams[sid]
			s.streamLock.Unlock()
			if st != nil {
				st.fin() // fin unblocks the readers and writers
			}

		case cmdPSH: // data frame
			if hdr.Length() == 0 {
				continue
			}

			// read payload from the underlying connection
			pNewbuf := defaultAllocator.Get(int(hdr.Length()))
			written, err := io.ReadFull(s.conn, *pNewbuf)
			if err != nil {
				s.notifyReadError(err)

				// recycle the buffer immediately.
				defaultAllocator.Put(pNewbuf)
				return
			}

			// push data to the corresponding stream
			s.streamLock.Lock()
			stream, ok := s.streams[sid]
			if ok {
				stream.pushBytes(pNewbuf)
				// deduct tokens from the bucket
				atomic.AddInt32(&s.bucket, -int32(written))
			} else {
				// data directed to a missing/closed stream, recycle the buffer immediately.
				defaultAllocator.Put(pNewbuf)
			}
			s.streamLock.Unlock()
			// nanodems patch: the reader is woken with no lock held, so a
			// data notification may read the stream (notify.go).
			if ok {
				stream.wakeupData()
			}

		case cmdUPD: // a window update signal (v2 only)
			if s.config.Version != 2 {
				s.notifyProtoError(ErrInvalidProtocol)
				return
			}
			if hdr.Length() != szCmdUPD {
				s.notifyProtoError(ErrInvalidProtocol)
				return
			}

			_, err := io.ReadFull(s.conn, updHdr[:])
			if err != nil {
				s.notifyReadError(err)
				return
			}

			// update the window size for the corresponding stream
			s.streamLock.Lock()
			st := s.streams[sid]
			s.streamLock.Unlock()
			if st != nil {
				st.update(updHdr.Consumed(), updHdr.Window())
			}

		default:
			s.notifyProtoError(ErrInvalidProtocol)
			return
		}
	}
}

// keepalive sends NOP frames periodically to keep the connection alive
func (s *Session) keepalive() {
	tickerPing := time.NewTicker(s.config.KeepAliveInterval)
	tickerTimeout := time.NewTicker(s.config.KeepAliveTimeout)
	defer tickerPing.Stop()
	defer tickerTimeout.Stop()
	for {
		select {
		case <-tickerPing.C:
			s.writeFrameQueued(newFrame(byte(s.config.Version), cmdNOP, 0), tickerPing.C, CLSCTRL)
			s.notifyBucket() // force a wakeup signal to the recvLoop
		case <-tickerTimeout.C:
			if !atomic.CompareAndSwapInt32(&s.sessionIsActive, 1, 0) {
				// recvLoop may block while bucket is 0, in this case,
				// session should not be closed.
				if atomic.LoadInt32(&s.bucket) > 0 {
					s.Close()
					return
				}
			}
		case <-s.die:
			return
		}
	}
}

// shaperLoop implements a priority queue and bandwidth shaping for write requests.
// Eg: Control messages are prioritized over data messages, and shaper tries
// its best to keep fair bandwidth among streams.
func (s *Session) shaperLoop() {
	chShaper := s.shaper

	for {
		select {
		case <-s.die:
			return
		case r := <-chShaper:
			s.sq.Push(r)
			// batch drain: collect more requests if available
			for len(chShaper) > 0 && s.sq.Len() < maxShaperSize {
				select {
				case r := <-chShaper:
					s.sq.Push(r)
				default:
				}
			}
			// notify sendLoop there are pending requests
			s.notifyShaperPending()

			if s.sq.Len() >= maxShaperSize {
				// stop accepting new requests temporarily if shaper queue is full
				chShaper = nil
			}
		case <-s.chShaperConsumed:
			// re-enable shaper channel
			chShaper = s.shaper
		}
	}
}

// notifyShaperPending notifies sendLoop that there are pending requests
func (s *Session) notifyShaperPending() {
	select {
	case s.chShaperPending <- struct{}{}:
	default:
	}
}

// notifyShaperConsumed notifies when shaper queue is being consumed
func (s *Session) notifyShaperConsumed() {
	select {
	case s.chShaperConsumed <- struct{}{}:
	default:
	}
}

// sendLoop sends frames over the underlying connection.
//
// nanodems patch: it takes every request the shaper has ready (up to
// maxBatchBytes), writes them to conn in one Write under wmu, and then
// answers each. One system call per batch instead of one per frame, and
// the connection is shared with writeFrameInternal's direct path.
func (s *Session) sendLoop() {
	buf := make([]byte, 0, maxBatchBytes+(1<<16)+headerSize)
	batch := make([]writeRequest, 0, 64)

EVENT_LOOP:
	for {
		select {
		case <-s.die:
			return
		case <-s.chShaperPending:
			for {
				buf, batch = buf[:0], batch[:0]
				for len(buf) < maxBatchBytes && len(batch) < cap(batch) {
					request, ok := s.sq.Pop()
					if !ok {
						break
					}
					buf = appendFrame(buf, request.frame)
					batch = append(batch, request)
				}
				if len(batch) == 0 {
					// notify shaperLoop to accept new requests
					s.notifyShaperConsumed()
					goto EVENT_LOOP
				}

				s.wmu.Lock()
				n, err := s.conn.Write(buf)
				s.wmu.Unlock()
				s.queued.Add(-int64(len(batch)))

				// answer each request with the part of n that was its own
				for _, request := range batch {
					size := headerSize + len(request.frame.data)
					done := min(max(n, 0), size)
					n -= size
					result := writeResult{n: max(done-headerSize, 0)}
					if done < size {
						result.err = err
						if result.err == nil {
							result.err = io.ErrShortWrite
						}
					}
					request.result <- result
				}

				// store conn error
				if err != nil {
					s.notifyWriteError(err)
					return
				}
			}
		}
	}
}

// maxBatchBytes bounds the frames sendLoop gathers into one Write.
const maxBatchBytes = 256 << 10

// appendFrame appends f's header and data to buf.
func appendFrame(buf []byte, f Frame) []byte {
	var hdr [headerSize]byte
	hdr[0] = f.ver
	hdr[1] = f.cmd
	binary.LittleEndian.PutUint16(hdr[2:], uint16(len(f.data)))
	binary.LittleEndian.PutUint32(hdr[4:], f.sid)
	buf = append(buf, hdr[:]...)
	return append(buf, f.data...)
}

// writeDirectFrames writes fs to conn in one Write on the caller's
// goroutine. The caller holds wmu. A deadline already past fails the
// write; one that passes while conn blocks does not interrupt it.
func (s *Session) writeDirectFrames(deadline <-chan time.Time, fs ...Frame) error {
	return s.writeFrames(deadline, nil, fs...)
}

// writeFrames is writeDirectFrames, holding the write until loop's next
// read if loop is not nil and conn can (TryWrite).
func (s *Session) writeFrames(deadline <-chan time.Time, loop io.Reader, fs ...Frame) error {
	select {
	case <-s.die:
		return io.ErrClosedPipe
	case <-s.chSocketWriteError:
		return s.socketWriteError.Load().(error)
	case <-deadline:
		return ErrTimeout
	default:
	}
	bp := directBufPool.Get().(*[]byte)
	b := (*bp)[:0]
	for _, f := range fs {
		b = appendFrame(b, f)
	}
	var err error
	if hw, ok := s.conn.(heldWriter); ok && loop != nil {
		_, err = hw.WriteHeld(b, loop)
	} else if bw, ok := s.conn.(bufferedWriter); ok && s.buffering {
		_, err = bw.WriteBuffered(b)
	} else {
		_, err = s.conn.Write(b)
	}
	*bp = b[:0]
	directBufPool.Put(bp)
	if err != nil {
		s.notifyWriteError(err)
	}
	return err
}

// directBufPool holds the buffers writeFrames puts frames together in.
var directBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2*((1<<16)+headerSize)); return &b }}

// writeControlFrame writes the control frame to the underlying connection
// and returns the number of bytes written if successful
func (s *Session) writeControlFrame(f Frame) (n int, err error) {
	timer := time.NewTimer(openCloseTimeout)
	defer timer.Stop()

	return s.writeFrameInternal(f, timer.C, CLSCTRL)
}

// internal writeFrame version to support deadline used in keepalive
//
// nanodems patch: when no request waits in the shaper and no write is in
// progress, the frame is written at once on the caller's goroutine. The
// shaper's order only matters between frames that wait; a frame that finds
// none waiting has nothing to be ordered against. This takes the three
// goroutine hand-offs of every write (caller → shaperLoop → sendLoop →
// caller) off a round trip: they were most of the scheduling delay of a
// 64-byte round trip through relay and agent (docs/perf.md). A direct write
// ignores deadline: it blocks, like sendLoop, until conn takes the frame or
// fails.
//
// A small frame written directly to a connection that can buffer it
// (bufferedWriter) is left in its buffer, and the writer, when other
// writers are about, yields once before it flushes: the other goroutines
// the poller woke in the same round, other tunnels' socket readers and
// closers of this session, then add their frames to the same system call
// (flush.go, writeNow).
func (s *Session) writeFrameInternal(f Frame, deadline <-chan time.Time, class CLASSID) (int, error) {
	if done, err := s.writeNow(deadline, f); done {
		if err != nil {
			return 0, err
		}
		return len(f.data), nil
	}
	return s.writeFrameQueued(f, deadline, class)
}

// writeNow writes fs in one write on the caller's goroutine if no write
// is queued or in progress, and reports whether it did. Frames of at most
// maxBufferedFrame bytes of data in all go into a bufferedWriter's buffer
// and are flushed after one yield (flush.go).
func (s *Session) writeNow(deadline <-chan time.Time, fs ...Frame) (bool, error) {
	if s.queued.Load() != 0 || !s.wmu.TryLock() {
		return false, nil
	}
	if s.queued.Load() != 0 {
		s.wmu.Unlock()
		return false, nil
	}
	size := 0
	for _, f := range fs {
		size += len(f.data)
	}
	bw, ok := s.conn.(bufferedWriter)
	s.buffering = ok && size <= maxBufferedFrame
	err := s.writeDirectFrames(deadline, fs...)
	buffered := s.buffering
	s.buffering = false
	s.wmu.Unlock()
	if buffered && err == nil {
		s.yield.buffered.Add(1)
		err = s.flushAfterYield(bw)
	}
	return true, err
}

// writeFramesInternal writes frames of one stream (a window update, data,
// a FIN) in one write when the connection is free, else one after the
// other through the shaper, in order.
func (s *Session) writeFramesInternal(deadline <-chan time.Time, frames ...Frame) error {
	if done, err := s.writeNow(deadline, frames...); done {
		return err
	}
	for _, f := range frames {
		class := CLSDATA
		if f.cmd == cmdUPD {
			class = CLSCTRL
		}
		if _, err := s.writeFrameQueued(f, deadline, class); err != nil {
			return err
		}
	}
	return nil
}

// writeFrameQueued hands f to the shaper and waits for sendLoop to write
// it, or for deadline. keepalive writes this way, so that a connection
// that blocks every write still ends in a keepalive timeout.
func (s *Session) writeFrameQueued(f Frame, deadline <-chan time.Time, class CLASSID) (int, error) {
	s.queued.Add(1)

	// get result channel from pool
	resultCh := resultChanPool.Get().(chan writeResult)

	req := writeRequest{
		class:  class,
		frame:  f,
		seq:    atomic.AddUint32(&s.requestID, 1),
		result: resultCh,
	}
	select {
	case s.shaper <- req:
	case <-s.die:
		s.queued.Add(-1)
		resultChanPool.Put(resultCh)
		return 0, io.ErrClosedPipe
	case <-s.chSocketWriteError:
		s.queued.Add(-1)
		resultChanPool.Put(resultCh)
		return 0, s.socketWriteError.Load().(error)
	case <-deadline:
		s.queued.Add(-1)
		resultChanPool.Put(resultCh)
		return 0, ErrTimeout
	}

	select {
	case result := <-resultCh:
		resultChanPool.Put(resultCh)
		return result.n, result.err
	case <-s.die:
		// Cannot recycle channel here - sendLoop may still write to it
		return 0, io.ErrClosedPipe
	case <-s.chSocketWriteError:
		// Cannot recycle channel here - sendLoop may still write to it
		return 0, s.socketWriteError.Load().(error)
	case <-deadline:
		// Cannot recycle channel here - sendLoop may still write to it
		return 0, ErrTimeout
	}
}
