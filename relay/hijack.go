package relay

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"

	"github.com/nanodems/connector/internal/coalesce"
	"github.com/nanodems/connector/internal/wsconn"
)

// wsBufSize is the size of the bufio reader and writer a WebSocket keeps
// after the upgrade. net/http hands over 4 KiB of each, and coder/websocket
// keeps them for the connection's life: 8 KiB of the relay's 38 KiB of Go
// heap and stacks per idle WebSocket tunnel (perf -pprof, K=2000). Small
// ones cost no system calls: reads are served from TLS's decrypted record,
// large payloads bypass the buffer, and every frame is collected whole
// below it (wsconn.CoalesceFrames) and leaves in one system call
// (coalesce.Hijacked), where a 32 KiB message used to be a 4 KiB record
// and then the rest.
const wsBufSize = 512

// smallHijack wraps a ResponseWriter for websocket.Accept so that the
// hijacked connection comes with small buffers and coalesced writes.
type smallHijack struct {
	http.ResponseWriter
}

func (w smallHijack) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w smallHijack) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// Every frame header the client sends is checked as it arrives, so an
	// unmasked frame or one past the read limit is refused at once with
	// its own close status (wsconn.CheckClientFrames). websocket.Accept
	// reads on from the connection returned here, behind what the reader
	// holds: both must read through the one checker.
	var src io.Reader = c
	if n := brw.Reader.Buffered(); n > 0 {
		// Bytes the client sent right behind the upgrade request: they
		// must stay buffered in the reader handed on, where
		// websocket.Accept looks for them.
		b, _ := brw.Reader.Peek(n)
		src = io.MultiReader(bytes.NewReader(bytes.Clone(b)), c)
	}
	cc := checkedConn{Conn: c, r: wsconn.CheckClientFrames(src, maxMessage)}
	br := bufio.NewReaderSize(cc, max(brw.Reader.Buffered(), wsBufSize))
	if n := brw.Reader.Buffered(); n > 0 {
		// A refused frame among them stays in the reader as its error, and
		// the WebSocket closes with its status on the first read.
		br.Peek(n)
	}
	out := wsconn.CoalesceFrames(coalesce.Hijacked(c))
	return cc, bufio.NewReadWriter(br, bufio.NewWriterSize(out, wsBufSize)), nil
}

// checkedConn is a hijacked connection whose reads pass a frame checker.
type checkedConn struct {
	net.Conn
	r io.Reader
}

func (c checkedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
