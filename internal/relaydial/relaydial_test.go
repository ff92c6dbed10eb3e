package relaydial

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nanodems/connector/internal/pin"
	"github.com/nanodems/connector/internal/testwait"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// never is a stagger no test waits out: with it, a second attempt starts
// only because the first failed, so which address wins says which rule
// ran, with no timing in the assertion.
const never = time.Hour

// bound keeps a broken dialer from hanging the test; it is no speed goal.
const bound = 30 * time.Second

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "relay"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// relay is a loopback listener that plays a relay: it completes TLS
// handshakes, or (silent) accepts TCP and never answers. It records every
// connection it accepted and whether the client has closed it.
type relay struct {
	ln     net.Listener
	silent bool
	cert   tls.Certificate

	mu       sync.Mutex
	accepted int
	closed   int // connections the client closed (read returned an error)
	conns    []net.Conn
	wg       sync.WaitGroup
}

func (r *relay) addr() netip.AddrPort { return r.ln.Addr().(*net.TCPAddr).AddrPort() }

func (r *relay) serve() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		r.accepted++
		r.conns = append(r.conns, c)
		r.mu.Unlock()
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			var rd io.Reader = c
			if !r.silent {
				tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{r.cert}})
				if tc.Handshake() != nil {
					r.markClosed()
					return
				}
				rd = tc
			}
			io.Copy(io.Discard, rd) // until the client closes
			r.markClosed()
		}()
	}
}

func (r *relay) markClosed() {
	r.mu.Lock()
	r.closed++
	r.mu.Unlock()
}

// counts reports how many connections were accepted and how many of them
// the client has closed.
func (r *relay) counts() (accepted, closed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.accepted, r.closed
}

func (r *relay) stop() {
	r.ln.Close()
	r.mu.Lock()
	for _, c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// startRelay listens on ip:port (port 0: any) and serves.
func startRelay(t *testing.T, ip string, port int, cert tls.Certificate, silent bool) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("listen on %s: %v", ip, err)
	}
	r := &relay{ln: ln, silent: silent, cert: cert}
	r.wg.Add(1)
	go r.serve()
	t.Cleanup(r.stop)
	return r
}

// freePort is a port free on every loopback address the test uses, so
// that one name can resolve to all of them.
func freePort(t *testing.T, ips ...string) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", ips[0]+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		ok := true
		for _, ip := range ips[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return port
		}
	}
	t.Fatal("no port free on every address")
	return 0
}

// names resolves test names to fixed addresses.
type names map[string][]netip.Addr

func (n names) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := n[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func addrs(ips ...string) []netip.Addr {
	var out []netip.Addr
	for _, ip := range ips {
		out = append(out, netip.MustParseAddr(ip))
	}
	return out
}

// tlsHandshake is the relay check the CLI makes: the pinned key.
func tlsHandshake(p string) Handshake {
	return func(ctx context.Context, raw net.Conn, _ string) (net.Conn, error) {
		tc := tls.Client(raw, pin.TLSConfig(p))
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, err
		}
		return tc, nil
	}
}

func dial(t *testing.T, d *Dialer, targets []string, avoid netip.AddrPort, hs Handshake) (*Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	return d.DialAvoid(ctx, targets, avoid, hs)
}

// A name with several addresses: the first one that answers wins, and no
// other is dialled while it does.
func TestFirstAddressWins(t *testing.T) {
	cert := selfSigned(t)
	port := freePort(t, "127.0.0.2", "127.0.0.3")
	a := startRelay(t, "127.0.0.2", port, cert, false)
	b := startRelay(t, "127.0.0.3", port, cert, false)
	d := &Dialer{Resolver: names{"relay.test": addrs("127.0.0.2", "127.0.0.3")}, Stagger: never}
	c, err := dial(t, d, []string{"relay.test:" + strconv.Itoa(port)}, netip.AddrPort{}, tlsHandshake(pin.Of(cert.Leaf)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Addr != a.addr() || c.Target != "relay.test:"+strconv.Itoa(port) {
		t.Fatalf("won by %v via %s, want %v", c.Addr, c.Target, a.addr())
	}
	if n, _ := b.counts(); n != 0 {
		t.Errorf("the second address got %d connections while the first answered", n)
	}
}

// A first address that accepts TCP and never answers TLS does not hold
// the dial: the next attempt starts after the stagger, wins, and the
// silent connection is closed by the dialer.
func TestSilentAddressPassed(t *testing.T) {
	cert := selfSigned(t)
	port := freePort(t, "127.0.0.2", "127.0.0.3")
	silent := startRelay(t, "127.0.0.2", port, cert, true)
	good := startRelay(t, "127.0.0.3", port, cert, false)
	d := &Dialer{Resolver: names{"relay.test": addrs("127.0.0.2", "127.0.0.3")}}
	c, err := dial(t, d, []string{"relay.test:" + strconv.Itoa(port)}, netip.AddrPort{}, tlsHandshake(pin.Of(cert.Leaf)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Addr != good.addr() {
		t.Fatalf("won by %v, want %v", c.Addr, good.addr())
	}
	waitCounts(t, silent, 1, 1, "the silent relay's connection closed by the dialer")
}

// A refused address starts the next attempt at once: with a stagger no
// test waits out, only that rule lets the second address win.
func TestRefusedAddressStartsNextAtOnce(t *testing.T) {
	cert := selfSigned(t)
	dead := closedPort(t, "127.0.0.2")
	good := startRelay(t, "127.0.0.3", 0, cert, false)
	d := &Dialer{Stagger: never}
	c, err := dial(t, d, []string{dead, good.addr().String()}, netip.AddrPort{}, tlsHandshake(pin.Of(cert.Leaf)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Addr != good.addr() || c.Target != good.addr().String() {
		t.Fatalf("won by %v via %s, want %v", c.Addr, c.Target, good.addr())
	}
}

// A relay whose key is not the pinned one fails its attempt like a dead
// one; it never wins, however fast it answers.
func TestWrongPinNeverWins(t *testing.T) {
	cert, other := selfSigned(t), selfSigned(t)
	impostor := startRelay(t, "127.0.0.2", 0, other, false)
	good := startRelay(t, "127.0.0.3", 0, cert, false)
	d := &Dialer{Stagger: never}
	c, err := dial(t, d, []string{impostor.addr().String(), good.addr().String()}, netip.AddrPort{}, tlsHandshake(pin.Of(cert.Leaf)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Addr != good.addr() {
		t.Fatalf("won by %v, want %v", c.Addr, good.addr())
	}
	waitCounts(t, impostor, 1, 1, "the impostor's connection closed")
}

// When every address fails, the error is one sentence that names each
// address tried (and the name that had none) with its reason.
func TestAllFailOneSentence(t *testing.T) {
	cert, other := selfSigned(t), selfSigned(t)
	dead := closedPort(t, "127.0.0.2")
	impostor := startRelay(t, "127.0.0.3", 0, other, false)
	d := &Dialer{Resolver: names{}, Stagger: never}
	_, err := dial(t, d, []string{dead, impostor.addr().String(), "gone.test:443", "no-port"}, netip.AddrPort{}, tlsHandshake(pin.Of(cert.Leaf)))
	if err == nil {
		t.Fatal("dial succeeded with no good address")
	}
	msg := err.Error()
	for _, want := range []string{dead + " (connection refused)", impostor.addr().String() + " (handshake: relay certificate pin", "gone.test:443 (no such host)", `"no-port" (not host:port)`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Count(msg, "\n") != 0 || !strings.HasPrefix(msg, "no relay address answered; tried ") {
		t.Errorf("not one sentence: %q", msg)
	}
}

// The address to avoid (the relay that asked its agents to move) is tried
// last, and still reached when it is the only one answering.
func TestAvoidTriedLast(t *testing.T) {
	cert := selfSigned(t)
	a := startRelay(t, "127.0.0.2", 0, cert, false)
	b := startRelay(t, "127.0.0.3", 0, cert, false)
	d := &Dialer{Stagger: never}
	targets := []string{a.addr().String(), b.addr().String()}
	c, err := dial(t, d, targets, a.addr(), tlsHandshake(pin.Of(cert.Leaf)))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if c.Addr != b.addr() {
		t.Fatalf("won by %v, want %v (the one not avoided)", c.Addr, b.addr())
	}
	b.stop()
	c, err = dial(t, d, targets, a.addr(), tlsHandshake(pin.Of(cert.Leaf)))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if c.Addr != a.addr() {
		t.Fatalf("won by %v, want the avoided %v as the last one left", c.Addr, a.addr())
	}
}

// A handshake that completes after the race is won is closed: only the
// winner is returned, and nothing else stays open.
func TestLateLoserClosed(t *testing.T) {
	cert := selfSigned(t)
	slow := startRelay(t, "127.0.0.2", 0, cert, false)
	fast := startRelay(t, "127.0.0.3", 0, cert, false)
	late := make(chan *closeRecorder, 1)
	normal := tlsHandshake(pin.Of(cert.Leaf))
	hs := func(ctx context.Context, raw net.Conn, target string) (net.Conn, error) {
		if target != slow.addr().String() {
			return normal(ctx, raw, target)
		}
		// Ignores ctx until the race is over, then "completes".
		<-ctx.Done()
		r := &closeRecorder{Conn: raw}
		late <- r
		return r, nil
	}
	d := &Dialer{Stagger: time.Millisecond}
	c, err := dial(t, d, []string{slow.addr().String(), fast.addr().String()}, netip.AddrPort{}, hs)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Addr != fast.addr() {
		t.Fatalf("won by %v, want %v", c.Addr, fast.addr())
	}
	r := <-late
	if !r.closed() {
		t.Fatal("the late loser was not closed")
	}
}

// Cancelling the context ends a dial whose addresses never answer, with
// every connection closed and an error that says why.
func TestCancelEndsDial(t *testing.T) {
	cert := selfSigned(t)
	port := freePort(t, "127.0.0.2", "127.0.0.3")
	s1 := startRelay(t, "127.0.0.2", port, cert, true)
	s2 := startRelay(t, "127.0.0.3", port, cert, true)
	d := &Dialer{Resolver: names{"relay.test": addrs("127.0.0.2", "127.0.0.3")}, Stagger: time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		c, err := d.Dial(ctx, []string{"relay.test:" + strconv.Itoa(port)}, tlsHandshake(pin.Of(cert.Leaf)))
		if c != nil {
			c.Close()
		}
		errc <- err
	}()
	waitCounts(t, s1, 1, 0, "the first attempt")
	waitCounts(t, s2, 1, 0, "the second attempt")
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("dial ended with %v, want context.Canceled", err)
	}
	waitCounts(t, s1, 1, 1, "the first connection closed")
	waitCounts(t, s2, 1, 1, "the second connection closed")
}

// Families alternate, IPv6 first, each in its given order; duplicates go;
// the avoided address is last.
func TestOrderInterleaves(t *testing.T) {
	ap := netip.MustParseAddrPort
	in := []candidate{
		{"a", ap("10.0.0.1:1")}, {"a", ap("10.0.0.2:1")}, {"a", ap("[2001:db8::1]:1")},
		{"b", ap("10.0.0.3:1")}, {"b", ap("[2001:db8::2]:1")}, {"b", ap("10.0.0.1:1")},
	}
	got := order(in, ap("10.0.0.2:1"))
	want := []string{"[2001:db8::1]:1", "10.0.0.1:1", "[2001:db8::2]:1", "10.0.0.3:1", "10.0.0.2:1"}
	if len(got) != len(want) {
		t.Fatalf("order: %v", got)
	}
	for i, c := range got {
		if c.addr.String() != want[i] {
			t.Fatalf("order[%d] = %v, want %s (all: %v)", i, c.addr, want[i], got)
		}
	}
}

type closeRecorder struct {
	net.Conn
	mu sync.Mutex
	n  int
}

func (c *closeRecorder) Close() error {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.Conn.Close()
}

func (c *closeRecorder) closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n > 0
}

// closedPort is an address on ip where nothing listens.
func closedPort(t *testing.T, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

// waitCounts waits until r has accepted and seen closed the given counts.
func waitCounts(t *testing.T, r *relay, accepted, closed int, what string) {
	t.Helper()
	if err := testwait.Until(bound, func() error {
		if a, c := r.counts(); a != accepted || c != closed {
			return fmt.Errorf("%s: accepted %d closed %d, want %d and %d", what, a, c, accepted, closed)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
