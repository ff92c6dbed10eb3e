package cli_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/internal/pin"
	"github.com/nanodems/connector/internal/testnet"
)

// forTransports runs test once on each transport of the CLI's mux
// connection: the raw one (ALPN) and the WebSocket.
func forTransports(t *testing.T, test func(t *testing.T, transport string)) {
	for _, tr := range []string{cli.TransportRaw, cli.TransportWS} {
		t.Run(tr, func(t *testing.T) { test(t, tr) })
	}
}

// tlsProxy is a TLS-terminating HTTP reverse proxy in front of the
// demo's relay, as a load balancer would be: it speaks HTTP/1.1 and h2 to
// clients and passes WebSocket upgrades, but knows no other ALPN
// protocol, so the raw transport does not pass it.
func tlsProxy(t *testing.T, relayURL, relayPin string) (string, string) {
	t.Helper()
	u, err := url.Parse(relayURL)
	must(t, err)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{TLSClientConfig: pin.TLSConfig(relayPin)}
	srv := httptest.NewUnstartedServer(rp)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv.URL, pin.Of(srv.Certificate())
}

// Behind a proxy that terminates TLS, auto falls back to the WebSocket
// (logged once, tunnels work), and raw alone refuses with a sentence
// that names the fix.
func TestTransportFallsBackToWebSocket(t *testing.T) {
	d := startDemo(t)
	s := mint(t, d)
	proxyURL, proxyPin := tlsProxy(t, d.Info.RelayURL, d.Info.CAPin)
	echo := d.Echo.Addr().Port

	tun, logs := open(t, d, s.Token, func(o *cli.Options) {
		o.Relay.URL, o.Relay.Pin, o.NoBind = proxyURL, proxyPin, true
	})
	if tun.Transport() != cli.TransportWS {
		t.Fatalf("transport %q behind a TLS proxy, want ws", tun.Transport())
	}
	c, err := tun.DialPlan(context.Background(), "127.0.0.2", uint16(echo))
	must(t, err)
	must(t, testnet.RoundTrip(c, 1<<20))
	c.Close()
	if n := logs.count("using the WebSocket transport"); n != 1 {
		t.Errorf("fallback logged %d times, want once:\n%s", n, logs)
	}

	_, err = cli.Open(context.Background(), cli.Options{
		Relay:     cli.Relay{URL: proxyURL, Token: s.Token, Pin: proxyPin},
		NoBind:    true,
		Transport: cli.TransportRaw,
	})
	if err == nil || !strings.Contains(err.Error(), "the relay does not offer the raw CLI transport") || !strings.Contains(err.Error(), "--relay-transport auto or ws") {
		t.Fatalf("raw behind a TLS proxy: %v", err)
	}
	if _, err := cli.Open(context.Background(), cli.Options{Relay: cli.Relay{URL: d.Info.RelayURL, Token: s.Token, Pin: d.Info.CAPin}, Transport: "quic"}); err == nil || !strings.Contains(err.Error(), "want auto, raw or ws") {
		t.Errorf("unknown transport: %v", err)
	}
}

// A client that offers only HTTP (every browser, curl) still gets HTTP/2
// or HTTP/1.1 from the relay: the raw transport's ALPN id is selected
// only for a client that offers it.
func TestRelayALPN(t *testing.T) {
	d := startDemo(t)
	u, err := url.Parse(d.Info.RelayURL)
	must(t, err)
	for _, tc := range []struct {
		offer []string
		want  string
	}{
		{[]string{"h2", "http/1.1"}, "h2"},
		{[]string{"http/1.1"}, "http/1.1"},
		{[]string{"nanodems-cli/1", "http/1.1"}, "nanodems-cli/1"},
		{nil, ""},
	} {
		cfg := pin.TLSConfig(d.Info.CAPin)
		cfg.NextProtos = tc.offer
		c, err := tls.Dial("tcp", u.Host, cfg)
		must(t, err)
		got := c.ConnectionState().NegotiatedProtocol
		c.Close()
		if got != tc.want {
			t.Errorf("offering %v: relay selected %q, want %q", tc.offer, got, tc.want)
		}
	}
	// And HTTP/2 still serves the API.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: pin.TLSConfig(d.Info.CAPin), ForceAttemptHTTP2: true}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(d.Info.RelayURL + "/healthz")
	must(t, err)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
		t.Errorf("GET /healthz: %s %d, want HTTP/2 200", resp.Proto, resp.StatusCode)
	}
}
