package fuzz

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/nanodems/connector/internal/wsconn"
)

// wsMessage is one binary message the peer sends; fragmented ones go out
// as two data frames and an empty final frame.
type wsMessage struct {
	data       []byte
	fragmented bool
}

// splitMessages reads the fuzz input: byte 0 sets the reader's buffer size
// (1..128), then each chunk is a byte (bit 7: fragmented, bits 0-6: length)
// and that many bytes, the last one cut short by the end of input.
func splitMessages(in []byte) (bufSize int, msgs []wsMessage) {
	if len(in) == 0 {
		return 1, nil
	}
	bufSize, in = 1+int(in[0]&0x7f), in[1:]
	for len(in) > 0 {
		n := min(int(in[0]&0x7f), len(in)-1)
		msgs = append(msgs, wsMessage{data: in[1 : 1+n], fragmented: in[0]&0x80 != 0})
		in = in[1+n:]
	}
	return bufSize, msgs
}

// wsInput is the inverse of splitMessages.
func wsInput(bufSize int, msgs ...string) []byte {
	b := []byte{byte(bufSize - 1)}
	for i, m := range msgs {
		l := byte(len(m))
		if i%2 == 1 {
			l |= 0x80
		}
		b = append(append(b, l), m...)
	}
	return b
}

func FuzzWSConn(f *testing.F) {
	f.Add(wsInput(64, "hello", " ", "world", ""))
	f.Add(wsInput(1, "abc", "", "after the half-close"))
	f.Add(wsInput(128, "", "x"))
	f.Add(wsInput(3, "no half-close: the peer closes normally"))
	f.Add(wsInput(7, "x", "", ""))
	f.Add(wsInput(2, strings.Repeat("z", 127), "a", "", "b"))
	f.Add([]byte{})
	f.Add([]byte{0, 0x80})      // fragmented empty message
	f.Add([]byte{0, 0x85, 'a'}) // truncated

	accepted := make(chan *websocket.Conn)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		select {
		case accepted <- ws:
		case <-time.After(10 * time.Second):
			ws.CloseNow()
		}
	}))
	f.Cleanup(srv.Close)
	url := "ws" + strings.TrimPrefix(srv.URL, "http")

	f.Fuzz(func(t *testing.T, in []byte) {
		bufSize, msgs := splitMessages(in)
		var want []byte
		halfClose := false
		for _, m := range msgs {
			if len(m.data) == 0 {
				halfClose = true
				break
			}
			want = append(want, m.data...)
		}

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		peer, _, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer peer.CloseNow()
		var ws *websocket.Conn
		select {
		case ws = <-accepted:
		case <-ctx.Done():
			t.Fatal("server never accepted")
		}
		defer ws.CloseNow()

		sent := make(chan error, 1)
		go func() {
			for _, m := range msgs {
				if err := writeMessage(ctx, peer, m); err != nil {
					sent <- err
					return
				}
			}
			if !halfClose { // a normal close is an EOF too
				sent <- peer.Close(websocket.StatusNormalClosure, "")
				return
			}
			sent <- nil
		}()

		c := wsconn.New(ws, wsconn.Addr("relay"), wsconn.Addr("peer"))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var got []byte
		buf := make([]byte, bufSize)
		for {
			n, err := c.Read(buf)
			if n < 0 || n > bufSize {
				t.Fatalf("Read returned %d", n)
			}
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("Read after %d bytes: %v (want %d bytes then EOF)", len(got), err, len(want))
			}
		}
		if n, err := c.Read(buf); n != 0 || err != io.EOF {
			t.Fatalf("Read after EOF = %d, %v", n, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("read %q, want %q", got, want)
		}
		if halfClose {
			peer.CloseNow() // unblocks messages after the half-close that nobody reads
			<-sent
		} else if err := <-sent; err != nil {
			t.Fatalf("peer's normal close: %v", err)
		}
	})
}

func writeMessage(ctx context.Context, ws *websocket.Conn, m wsMessage) error {
	if !m.fragmented {
		return ws.Write(ctx, websocket.MessageBinary, m.data)
	}
	w, err := ws.Writer(ctx, websocket.MessageBinary)
	if err != nil {
		return err
	}
	half := len(m.data) / 2
	if _, err := w.Write(m.data[:half]); err != nil {
		return err
	}
	if _, err := w.Write(m.data[half:]); err != nil {
		return err
	}
	return w.Close()
}
