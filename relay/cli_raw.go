package relay

import (
	"context"
	"crypto/tls"
	"net/http"
	"time"

	"github.com/coder/websocket"
	"github.com/xtaci/smux"

	"github.com/nanodems/connector/internal/coalesce"
	"github.com/nanodems/connector/mux"
)

// The CLI's raw transport: a TLS connection to the API port that
// negotiates mux.CLIProtocol by ALPN carries the CLI's hello (its ops_
// token), the relay's answer, and then the same smux session as
// /api/cli/mux, straight over TLS. The WebSocket costs the CLI's leg a
// frame header per smux frame and, on the CLI's side, a masking XOR of
// every byte; docs/perf-peers.md has the before and after. The
// WebSocket stays: a CLI falls back to it when the relay (an older one,
// or a TLS-terminating proxy in front) does not select the protocol.

// cliHelloTimeout bounds the wait for a raw connection's hello, as
// apiHeaderTimeout bounds a request's headers.
const cliHelloTimeout = apiHeaderTimeout

// serveCLIRaw is the http.Server's TLSNextProto handler for
// mux.CLIProtocol: the handshake is done (handshakeGate), and the
// connection is closed when this returns.
func (s *Server) serveCLIRaw(_ *http.Server, c *tls.Conn, _ http.Handler) {
	s.cli.handleCLIRaw(c)
}

// handleCLIRaw reads the hello, authenticates its token as /api/cli/mux
// authenticates its Bearer token (same checks, same sliding, same
// principal), answers with the status and reason the WebSocket's upgrade
// would have had, and on 200 serves the mux until it ends.
func (s *cliEdge) handleCLIRaw(c *tls.Conn) {
	defer c.Close()
	remote := c.RemoteAddr().String()
	c.SetDeadline(time.Now().Add(cliHelloTimeout))
	tok, err := mux.ReadCLIHello(c)
	if err != nil {
		s.log.Debug("cli raw hello", "remote", remote, "err", err)
		refuseCLIRaw(c, http.StatusBadRequest, err.Error())
		return
	}
	if s.late != nil {
		if reason, late := s.late(remote); late {
			refuseCLIRaw(c, http.StatusServiceUnavailable, reason)
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), cliHelloTimeout)
	cs, err := s.cliSessionByToken(ctx, tok)
	cancel()
	if err != nil {
		code, reason := HTTPStatus(err), err.Error()
		if code == http.StatusInternalServerError {
			s.log.Error("cli raw session", "remote", remote, "err", err)
			reason = "internal error"
		}
		refuseCLIRaw(c, code, reason)
		return
	}
	if _, err := c.Write(mux.AppendCLIAnswer(nil, mux.CLIAnswer{Status: http.StatusOK})); err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	conn := coalesce.Hijacked(c)
	sess, err := smux.Server(conn, mux.Config())
	if err != nil {
		return
	}
	closeConn := func(websocket.StatusCode, string) { conn.Close() }
	s.serveCLIMux(cs, &cliMuxConn{closeConn: closeConn, sess: sess}, remote, "raw")
}

// refuseCLIRaw answers a raw connection's hello with a refusal; the
// caller closes it.
func refuseCLIRaw(c *tls.Conn, status int, reason string) {
	c.Write(mux.AppendCLIAnswer(nil, mux.CLIAnswer{Status: status, Reason: reason}))
}
