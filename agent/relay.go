package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/nanodems/connector/internal/coalesce"
	"github.com/nanodems/connector/internal/relaydial"
)

// dialRelay opens a TLS 1.3 connection to one of the agent listeners,
// racing every address of every listed relay (Happy Eyeballs, avoid
// last), and writes its preamble: the shared session, or a dedicated
// connection. The whole race is bounded by Config.HandshakeTimeout: a
// relay that accepts and never answers would otherwise hold the agent
// offline with no error to log. It returns the address that answered.
func (a *Agent) dialRelay(ctx context.Context, avoid netip.AddrPort, preamble []byte) (net.Conn, netip.AddrPort, error) {
	return a.dial(ctx, a.id.relayAddrs(), avoid, preamble)
}

// dialAt is dialRelay to one address: a dedicated connection must reach
// the relay that holds its tunnel's session.
func (a *Agent) dialAt(ctx context.Context, at netip.AddrPort, preamble []byte) (net.Conn, error) {
	c, _, err := a.dial(ctx, []string{at.String()}, netip.AddrPort{}, preamble)
	return c, err
}

func (a *Agent) dial(ctx context.Context, addrs []string, avoid netip.AddrPort, preamble []byte) (net.Conn, netip.AddrPort, error) {
	hctx, cancel := context.WithTimeout(ctx, a.cfg.HandshakeTimeout)
	defer cancel()
	hs := func(ctx context.Context, raw net.Conn, target string) (net.Conn, error) {
		cfg := a.id.tlsConfig()
		cfg.ServerName, _, _ = net.SplitHostPort(target)
		conn := coalesce.Client(raw, cfg)
		if err := conn.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		return conn, nil
	}
	d := a.cfg.Dialer
	if d == nil {
		d = &relaydial.Dialer{}
	}
	conn, err := d.DialAvoid(hctx, addrs, avoid, hs)
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return nil, netip.AddrPort{}, fmt.Errorf("dial relay: TLS handshake: no answer within %v: %w", a.cfg.HandshakeTimeout, err)
		}
		return nil, netip.AddrPort{}, fmt.Errorf("dial relay: %w", err)
	}
	if _, err := conn.Write(preamble); err != nil {
		conn.Close()
		return nil, conn.Addr, fmt.Errorf("dial relay %s: %w", conn.Addr, err)
	}
	return conn.Conn, conn.Addr, nil
}
