package relay_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/xtaci/smux"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/pin"
	"github.com/nanodems/connector/mux"
)

// forCLITransports runs test on both transports of the CLI's mux
// connection: "raw" (ALPN mux.CLIProtocol, cli_raw.go) and "ws"
// (/api/cli/mux).
func forCLITransports(t *testing.T, test func(t *testing.T, transport string)) {
	for _, tr := range []string{"raw", "ws"} {
		t.Run(tr, func(t *testing.T) { test(t, tr) })
	}
}

// rawConn is a TLS connection to the demo relay's API port that
// negotiated the raw CLI transport.
func rawConn(t *testing.T, d *demo.Demo) net.Conn {
	t.Helper()
	u, err := url.Parse(d.Info.RelayURL)
	must(t, err)
	cfg := pin.TLSConfig(d.Info.CAPin)
	cfg.NextProtos = []string{mux.CLIProtocol, "http/1.1"}
	c, err := tls.Dial("tcp", u.Host, cfg)
	must(t, err)
	if p := c.ConnectionState().NegotiatedProtocol; p != mux.CLIProtocol {
		c.Close()
		t.Fatalf("relay selected ALPN %q, want %q", p, mux.CLIProtocol)
	}
	return c
}

// rawExchange sends hello on a fresh raw connection and reads the answer:
// the connection on 200, else a *cli.RelayError.
func rawExchange(t *testing.T, d *demo.Demo, hello []byte) (net.Conn, error) {
	t.Helper()
	c := rawConn(t, d)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write(hello); err != nil {
		c.Close()
		return nil, err
	}
	a, err := mux.ReadCLIAnswer(c)
	if err != nil {
		c.Close()
		return nil, err
	}
	if a.Status != 200 {
		// The relay closes after a refusal: nothing follows the answer.
		if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
			t.Errorf("after the refusal: %d bytes, %v; want EOF", n, err)
		}
		c.Close()
		return nil, &cli.RelayError{Status: a.Status, Reason: a.Reason}
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

func rawHello(t *testing.T, d *demo.Demo, token string) (net.Conn, error) {
	t.Helper()
	hello, err := mux.AppendCLIHello(nil, token)
	must(t, err)
	return rawExchange(t, d, hello)
}

// dialRawMux is dialMux on the raw transport.
func dialRawMux(t *testing.T, d *demo.Demo, token string) *muxClient {
	t.Helper()
	c, err := rawHello(t, d, token)
	must(t, err)
	sess, err := smux.Client(c, mux.Config())
	must(t, err)
	m := &muxClient{sess: sess, dead: make(chan struct{})}
	go func() {
		defer close(m.dead)
		_, m.err = sess.AcceptStream()
	}()
	t.Cleanup(func() { sess.Close(); c.Close(); <-m.dead })
	return m
}

// The raw transport refuses what /api/cli/mux refuses, with the same
// status and sentence, before any smux; a malformed hello gets 400 with
// its reason; none of it disturbs the relay.
func TestCLIRawRefusals(t *testing.T) {
	d := startDemo(t)
	ctx := context.Background()
	s := mintCLI(t, d)
	revoked := mintCLI(t, d)
	must(t, d.API.Do(ctx, "DELETE", "/api/cli/sessions/"+revoked.ID, nil, nil, demo.Bearer(d.Info.Token)))

	for _, tc := range []struct {
		name   string
		hello  []byte
		status int
		reason string
	}{
		{"unknown ops_ token", hello(t, "ops_"+strings.Repeat("x", 43)), 401, "invalid or revoked credential"},
		{"an nt_ token", hello(t, d.Info.Token), 401, "invalid or revoked credential"},
		{"revoked session", hello(t, revoked.Token), 401, "CLI session revoked"},
		{"HTTP instead of a hello", []byte("GET /api/cli/mux HTTP/1.1\r\nHost: x\r\n\r\n"), 400, "mux: bad CLI hello: version 71, want 1"},
		{"empty token", []byte{mux.HeaderVersion, 0}, 400, "mux: bad CLI hello: token of 0 bytes, want 1 to 255"},
		{"control byte in the token", []byte{mux.HeaderVersion, 2, 'o', '\n'}, 400, "mux: bad CLI hello: token has byte 0x0a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rawExchange(t, d, tc.hello)
			var re *cli.RelayError
			if !errors.As(err, &re) || re.Status != tc.status || re.Reason != tc.reason {
				t.Fatalf("answer %v, want %d %q", err, tc.status, tc.reason)
			}
		})
	}
	t.Run("truncated hello", func(t *testing.T) {
		c := rawConn(t, d)
		defer c.Close()
		c.Write([]byte{mux.HeaderVersion, 47, 'o', 'p', 's'})
		c.(*tls.Conn).CloseWrite()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		a, err := mux.ReadCLIAnswer(c)
		if err != nil || a.Status != 400 || !strings.Contains(a.Reason, "bad CLI hello: token: unexpected EOF") {
			t.Fatalf("answer %+v %v, want 400 bad CLI hello", a, err)
		}
	})

	// The relay still serves the good session, on either transport.
	for _, tr := range []string{"raw", "ws"} {
		m := dialMuxOn(t, d, s.Token, tr)
		st, err := m.open("127.0.0.2", uint16(d.Echo.Addr().Port))
		must(t, err)
		must(t, roundTrip(mux.NewStream(st), 1<<16))
		st.Close()
	}
}

func hello(t *testing.T, token string) []byte {
	t.Helper()
	b, err := mux.AppendCLIHello(nil, token)
	must(t, err)
	return b
}
