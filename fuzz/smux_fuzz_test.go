package fuzz

import (
	"bytes"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/xtaci/smux"

	"github.com/nanodems/connector/mux"
)

// smuxFrame encodes one smux v2 frame: ver, cmd, length, stream id, data.
func smuxFrame(cmd byte, sid uint32, data []byte) []byte {
	b := []byte{2, cmd}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(data)))
	b = binary.LittleEndian.AppendUint32(b, sid)
	return append(b, data...)
}

// replayConn is the relay's side of an agent session as the agent sees it:
// Read returns the fuzzer's bytes, then EOF; writes are taken and dropped.
type replayConn struct{ r *bytes.Reader }

func (c *replayConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *replayConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *replayConn) Close() error                { return nil }

// FuzzSmuxSession feeds arbitrary bytes to an smux session configured as
// the connector's (mux.Config), the patched smux of third_party/smux: the
// parser of every frame an agent or relay receives. Each stream it accepts
// is read to its end and answered, so the patched write paths (direct
// writes, the owed window update) run too. The session must end when the
// input does, without a panic, and every stream with it.
func FuzzSmuxSession(f *testing.F) {
	upd := binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, 5), 1<<20)
	f.Add(smuxFrame(0, 1, nil))                                              // SYN
	f.Add(append(smuxFrame(0, 1, nil), smuxFrame(2, 1, []byte("hello"))...)) // SYN, PSH
	f.Add(bytes.Join([][]byte{smuxFrame(0, 3, nil), smuxFrame(2, 3, []byte("ab")), smuxFrame(4, 3, upd), smuxFrame(1, 3, nil)}, nil))
	f.Add(smuxFrame(3, 0, nil))                                        // NOP
	f.Add(smuxFrame(2, 9, []byte("data for no stream")))               // PSH to an unknown stream
	f.Add(smuxFrame(0, 5, []byte("syn with a body")))                  // protocol error
	f.Add([]byte{1, 0, 0, 0, 1, 0, 0, 0})                              // version 1 on a v2 session
	f.Add([]byte{2, 2, 0xff, 0xff, 1, 0, 0, 0, 'x'})                   // length past the input
	f.Add(append(smuxFrame(0, 7, nil), smuxFrame(4, 7, []byte{1})...)) // short UPD

	f.Fuzz(func(t *testing.T, in []byte) {
		conn := &replayConn{r: bytes.NewReader(in)}
		cfg := mux.Config()
		cfg.KeepAliveDisabled = true
		sess, err := smux.Server(conn, cfg)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for {
			st, err := sess.AcceptStream()
			if err != nil {
				break
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer st.Close()
				st.SetDeadline(time.Now().Add(2 * time.Second))
				b := make([]byte, 512)
				for {
					n, err := st.Read(b)
					if n > 0 {
						st.Write(b[:n])
					}
					if err != nil {
						return
					}
				}
			}()
		}
		sess.Close()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("streams did not end with the session")
		}
		if !sess.IsClosed() {
			t.Fatal("session still open after its input ended")
		}
	})
}
