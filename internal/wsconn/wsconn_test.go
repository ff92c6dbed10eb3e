package wsconn_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/nanodems/connector/internal/wsconn"
)

// wsPair returns the client's and the server's raw WebSockets of one
// connection through a real HTTP server.
func wsPair(t *testing.T) (client, server *websocket.Conn) {
	t.Helper()
	accepted := make(chan *websocket.Conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Error(err)
		}
		accepted <- ws
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.FailNow()
	}
	for _, ws := range []*websocket.Conn{client, server} {
		ws.SetReadLimit(1 << 20) // as the relay and the CLI do
		t.Cleanup(func() { ws.CloseNow() })
	}
	return client, server
}

// connPair wraps both ends of wsPair, with deadlines so a stuck test fails.
func connPair(t *testing.T) (client, server *wsconn.Conn) {
	cws, sws := wsPair(t)
	client = wsconn.New(cws, wsconn.Addr("client"), wsconn.Addr("server"))
	server = wsconn.New(sws, wsconn.Addr("server"), wsconn.Addr("client"))
	for _, c := range []*wsconn.Conn{client, server} {
		c.SetDeadline(time.Now().Add(10 * time.Second))
	}
	return client, server
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7 / 3)
	}
	return b
}

// The target reads the request to EOF and only then answers; the answer
// must arrive in full and end with EOF.
func TestHalfClose(t *testing.T) {
	client, server := connPair(t)
	request, answer := pattern(200<<10), pattern(1<<20+3)

	served := make(chan error, 1)
	go func() {
		got, err := io.ReadAll(server)
		if err == nil && !bytes.Equal(got, request) {
			err = fmt.Errorf("server read %d bytes, want %d", len(got), len(request))
		}
		for rest := answer; err == nil && len(rest) > 0; {
			k := min(len(rest), 64<<10)
			_, err = server.Write(rest[:k])
			rest = rest[k:]
		}
		if err == nil {
			err = server.CloseWrite()
		}
		if _, werr := server.Write([]byte("x")); err == nil && werr == nil {
			err = errors.New("Write after CloseWrite succeeded")
		}
		served <- err
	}()

	if _, err := client.Write(request); err != nil {
		t.Fatal(err)
	}
	if err := client.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := client.CloseWrite(); err != nil {
		t.Errorf("second CloseWrite = %v", err)
	}
	got, err := io.ReadAll(client)
	if err != nil || !bytes.Equal(got, answer) {
		t.Fatalf("client read %d bytes, %v; want %d bytes then EOF", len(got), err, len(answer))
	}
	if n, err := client.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Errorf("Read after EOF = %d, %v", n, err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

// Empty writes send nothing: only CloseWrite may send the empty message.
func TestEmptyWriteIsNotEOF(t *testing.T) {
	client, server := connPair(t)
	if n, err := client.Write(nil); n != 0 || err != nil {
		t.Fatalf("Write(nil) = %d, %v", n, err)
	}
	if _, err := client.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	client.CloseWrite()
	if got, err := io.ReadAll(server); err != nil || string(got) != "data" {
		t.Fatalf("server read %q, %v; want \"data\"", got, err)
	}
}

func TestTextMessageRejected(t *testing.T) {
	cws, sws := wsPair(t)
	server := wsconn.New(sws, wsconn.Addr("server"), wsconn.Addr("client"))
	server.SetDeadline(time.Now().Add(10 * time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cws.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	peerErr := make(chan error, 1)
	go func() { _, _, err := cws.Read(ctx); peerErr <- err }()
	if n, err := server.Read(make([]byte, 16)); n != 0 || err == nil || err == io.EOF {
		t.Fatalf("Read of a text message = %d, %v; want an error", n, err)
	}
	if err := <-peerErr; websocket.CloseStatus(err) != websocket.StatusUnsupportedData {
		t.Fatalf("peer got %v, want close status %d", err, websocket.StatusUnsupportedData)
	}
}

// Close ends both directions: the peer reads EOF, and neither side can
// write any more.
func TestClose(t *testing.T) {
	client, server := connPair(t)
	peerRead := make(chan error, 1)
	var got []byte
	go func() {
		var err error
		got, err = io.ReadAll(server)
		peerRead <- err
	}()
	if _, err := client.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	if err := client.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := <-peerRead; err != nil || string(got) != "bye" {
		t.Fatalf("peer read %q, %v; want \"bye\" then EOF", got, err)
	}
	if err := client.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if _, err := client.Write([]byte("x")); err == nil {
		t.Error("Write after Close succeeded")
	}
	if _, err := client.Read(make([]byte, 1)); err == nil {
		t.Error("Read after Close succeeded")
	}
	if _, err := server.Write([]byte("x")); err == nil {
		t.Error("peer's Write after Close succeeded")
	}
}

// Abort must reach the peer as an error, never as a clean EOF.
func TestAbort(t *testing.T) {
	client, server := connPair(t)
	peerRead := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(server)
		peerRead <- err
	}()
	client.Abort(errors.New("agent session lost: " + strings.Repeat("x", 200)))
	err := <-peerRead
	if websocket.CloseStatus(err) != websocket.StatusInternalError {
		t.Fatalf("peer read ended with %v, want close status %d", err, websocket.StatusInternalError)
	}
}
