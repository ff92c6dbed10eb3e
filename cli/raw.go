package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"time"

	"github.com/nanodems/connector/mux"
)

// Transports of the CLI's mux connection (Options.Transport, the
// --relay-transport flag; docs/cli.md).
const (
	// TransportAuto tries the raw transport and falls back to the
	// WebSocket when the relay does not offer it: the default.
	TransportAuto = "auto"
	// TransportRaw is smux straight over TLS, negotiated by ALPN
	// (mux.CLIProtocol), or nothing.
	TransportRaw = "raw"
	// TransportWS is smux over the WebSocket of /api/cli/mux, which
	// passes through anything that passes HTTPS.
	TransportWS = "ws"
)

// ParseTransport checks a --relay-transport value; empty is auto.
func ParseTransport(s string) (string, error) {
	switch s {
	case "", TransportAuto:
		return TransportAuto, nil
	case TransportRaw, TransportWS:
		return s, nil
	}
	return "", fmt.Errorf("relay transport %q: want auto, raw or ws", s)
}

// errRawNotOffered is a relay whose TLS handshake did not select
// mux.CLIProtocol: an older relay, or a proxy that terminates TLS in
// front of it.
var errRawNotOffered = errors.New("the relay does not offer the raw CLI transport (ALPN " + mux.CLIProtocol + ")")

// dialRaw opens the raw transport to whichever relay of r answers first:
// TLS offering mux.CLIProtocol (and "http/1.1", which an older relay
// selects instead of failing the handshake), the hello with the token,
// the relay's answer. It returns the connection, ready for smux; a
// refusal is a *RelayError, as the WebSocket's would be.
func dialRaw(ctx context.Context, r Relay, onWin func(netip.AddrPort)) (net.Conn, error) {
	u, err := url.Parse(r.URL)
	if err != nil || u.Scheme != "https" {
		return nil, fmt.Errorf("%w: it needs an https relay URL, not %q", errRawNotOffered, r.URL)
	}
	hello, err := mux.AppendCLIHello(nil, r.Token)
	if err != nil {
		return nil, fmt.Errorf("CLI token: %w", err)
	}
	c, err := r.raceDial(true, onWin, mux.CLIProtocol, "http/1.1")(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	if cs, ok := c.(interface{ ConnectionState() tls.ConnectionState }); !ok || cs.ConnectionState().NegotiatedProtocol != mux.CLIProtocol {
		c.Close()
		return nil, errRawNotOffered
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(dialTimeout)
	}
	c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	err = exchangeHello(c, hello)
	stop()
	if err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// exchangeHello writes the hello and reads the relay's answer: nil for
// 200, else a *RelayError.
func exchangeHello(c net.Conn, hello []byte) error {
	if _, err := c.Write(hello); err != nil {
		return fmt.Errorf("raw CLI transport: %w", err)
	}
	a, err := mux.ReadCLIAnswer(c)
	if err != nil {
		return fmt.Errorf("raw CLI transport: %w", err)
	}
	if a.Status != 200 {
		return &RelayError{Status: a.Status, Reason: a.Reason}
	}
	return nil
}
