package rtsp

import (
	"context"
	"fmt"

	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"

	"github.com/nanodems/connector/internal/testwait"
	"github.com/nanodems/connector/rtsp/rtsptest"
)

// fakeBackend maps handles to addresses, with grants "ok:<tenant>" and
// "expired".
type fakeBackend struct {
	mu       sync.Mutex
	devices  map[string]fakeDevice
	dials    atomic.Int64
	udpDials atomic.Int64
}

type fakeDevice struct {
	tenant     string
	addr       string
	user, pass string
	offline    bool
}

func newFakeBackend() *fakeBackend { return &fakeBackend{devices: map[string]fakeDevice{}} }

func (b *fakeBackend) add(h string, d fakeDevice) {
	b.mu.Lock()
	b.devices[h] = d
	b.mu.Unlock()
}

func (b *fakeBackend) get(h string) (fakeDevice, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, ok := b.devices[h]
	return d, ok
}

func (b *fakeBackend) Authorize(ctx context.Context, h, grant string) (Principal, error) {
	tenant, ok := strings.CutPrefix(grant, "ok.")
	if !ok {
		return Principal{}, Errorf(401, "bad grant")
	}
	d, found := b.get(h)
	if !found {
		return Principal{}, Errorf(404, "unknown handle")
	}
	if d.tenant != tenant {
		return Principal{}, Errorf(403, "handle does not belong to your tenant")
	}
	return Principal{Tenant: tenant, Subject: "test"}, nil
}

func (b *fakeBackend) Dial(ctx context.Context, p Principal, h string) (net.Conn, Target, error) {
	d, ok := b.get(h)
	if !ok {
		return nil, Target{}, Errorf(404, "unknown handle")
	}
	if d.offline {
		return nil, Target{}, Errorf(503, "agent reconnecting")
	}
	b.dials.Add(1)
	var dl net.Dialer
	c, err := dl.DialContext(ctx, "tcp", d.addr)
	if err != nil {
		return nil, Target{}, Errorf(502, "%v", err)
	}
	host, port, _ := net.SplitHostPort(d.addr)
	pn, _ := strconv.Atoi(port)
	return c, Target{Host: host, Port: pn}, nil
}

func (b *fakeBackend) Credentials(ctx context.Context, h string) (string, string, bool) {
	d, _ := b.get(h)
	return d.user, d.pass, d.user != ""
}

// DialUDP makes fakeBackend a UDPBackend: a port pair bound in-process on
// the camera's address stands in for the agent's.
func (b *fakeBackend) DialUDP(ctx context.Context, p Principal, h string) (UDPRelay, error) {
	d, ok := b.get(h)
	if !ok {
		return nil, Errorf(404, "unknown handle")
	}
	host, _, _ := net.SplitHostPort(d.addr)
	b.udpDials.Add(1)
	return newLoopUDP(net.ParseIP(host))
}

// loopUDP is a UDPRelay without an agent: two sockets next to the camera,
// their datagrams (from the camera's IP only) queued for ReadDatagram.
type loopUDP struct {
	rtp, rtcp *net.UDPConn
	camIP     net.IP
	peer      [2]atomic.Pointer[net.UDPAddr]
	q         chan loopDatagram
	done      chan struct{}
	once      sync.Once
}

type loopDatagram struct {
	b    []byte
	rtcp bool
}

func newLoopUDP(ip net.IP) (*loopUDP, error) {
	a, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
	if err != nil {
		return nil, err
	}
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
	if err != nil {
		a.Close()
		return nil, err
	}
	u := &loopUDP{rtp: a, rtcp: c, camIP: ip, q: make(chan loopDatagram, 1024), done: make(chan struct{})}
	go u.read(a, false)
	go u.read(c, true)
	return u, nil
}

func (u *loopUDP) read(c *net.UDPConn, rtcp bool) {
	i := 0
	if rtcp {
		i = 1
	}
	buf := make([]byte, 65535)
	for {
		n, from, err := c.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if !from.IP.Equal(u.camIP) {
			continue
		}
		if u.peer[i].Load() == nil {
			u.peer[i].Store(from)
		}
		select {
		case u.q <- loopDatagram{append([]byte(nil), buf[:n]...), rtcp}:
		case <-u.done:
			return
		}
	}
}

func (u *loopUDP) Ports() (int, int) {
	return u.rtp.LocalAddr().(*net.UDPAddr).Port, u.rtcp.LocalAddr().(*net.UDPAddr).Port
}

func (u *loopUDP) SetCamera(rtp, rtcp int) error {
	u.peer[0].Store(&net.UDPAddr{IP: u.camIP, Port: rtp})
	u.peer[1].Store(&net.UDPAddr{IP: u.camIP, Port: rtcp})
	return nil
}

func (u *loopUDP) ReadDatagram(b []byte) (int, bool, error) {
	select {
	case d := <-u.q:
		return copy(b, d.b), d.rtcp, nil
	case <-u.done:
		return 0, false, net.ErrClosed
	}
}

func (u *loopUDP) Pending() bool { return len(u.q) > 0 }

func (u *loopUDP) WriteDatagram(rtcp bool, b []byte) error {
	c, i := u.rtp, 0
	if rtcp {
		c, i = u.rtcp, 1
	}
	to := u.peer[i].Load()
	if to == nil {
		return nil
	}
	_, err := c.WriteToUDP(b, to)
	return err
}

func (u *loopUDP) Close() error {
	u.once.Do(func() {
		close(u.done)
		u.rtp.Close()
		u.rtcp.Close()
	})
	return nil
}

// tcpOnlyBackend hides fakeBackend's DialUDP: a backend that cannot relay
// UDP.
type tcpOnlyBackend struct{ Backend }

func testLogger() *slog.Logger {
	level := slog.LevelError
	if os.Getenv("NANODEMS_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// modes runs f for both listener modes.
func modes(t *testing.T, f func(t *testing.T, mode ListenerMode)) {
	for _, m := range []ListenerMode{GNet, Goroutines} {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			f(t, m)
		})
	}
}

func startGateway(t *testing.T, b Backend, mode ListenerMode, adjust ...func(*Config)) *Gateway {
	t.Helper()
	cfg := Config{Addr: "127.0.0.1:0", Backend: b, Mode: mode, Logger: testLogger(), Loops: 2}
	for _, f := range adjust {
		f(&cfg)
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func startCamera(t *testing.T, o rtsptest.Options) *rtsptest.Camera {
	t.Helper()
	cam, err := rtsptest.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cam.Close)
	return cam
}

const testHandle = "h-RkN3Lzm9TgD8e2Bp7Q1xWA"

func gwURL(g *Gateway, h, path, grant string) string {
	u := "rtsp://" + g.Addr() + "/" + h + path
	if grant != "" {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		u += sep + "nd_grant=" + grant
	}
	return u
}

// pull plays url with gortsplib over the given protocol and returns a
// channel of video RTP packets.
type puller struct {
	c       *gortsplib.Client
	pkts    chan *rtp.Packet
	count   atomic.Int64
	desc    *description.Session
	firstIn chan struct{}
	once    sync.Once
}

func pull(t *testing.T, url string, proto gortsplib.Protocol, tunnel gortsplib.Tunnel) (*puller, error) {
	t.Helper()
	u, err := base.ParseURL(url)
	if err != nil {
		return nil, err
	}
	p := &puller{pkts: make(chan *rtp.Packet, 4096), firstIn: make(chan struct{})}
	p.c = &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Protocol: &proto, Tunnel: tunnel, ReadTimeout: 10 * time.Second}
	if err := p.c.Start(); err != nil {
		return nil, err
	}
	desc, _, err := p.c.Describe(u)
	if err != nil {
		p.c.Close()
		return nil, err
	}
	p.desc = desc
	if err := p.c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		p.c.Close()
		return nil, err
	}
	var vf *format.H264
	vm := desc.FindFormat(&vf)
	p.c.OnPacketRTPAny(func(m *description.Media, f format.Format, pkt *rtp.Packet) {
		if m != vm {
			return
		}
		p.count.Add(1)
		p.once.Do(func() { close(p.firstIn) })
		select {
		case p.pkts <- pkt:
		default:
		}
	})
	if _, err := p.c.Play(nil); err != nil {
		p.c.Close()
		return nil, err
	}
	return p, nil
}

// waitPackets waits until the puller has n video packets.
func (p *puller) waitPackets(n int64, timeout time.Duration) error {
	return testwait.Until(timeout, func() error {
		if got := p.count.Load(); got < n {
			return fmt.Errorf("got %d video packets, want %d", got, n)
		}
		return nil
	})
}

// rawConn speaks RTSP by hand.
type rawConn struct {
	t    *testing.T
	c    net.Conn
	rd   *Reader
	cseq int
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, rd: NewReader(c, 4096, Limits{})}
}

// do sends a request and returns the answer, skipping frames.
func (r *rawConn) do(method, url string, hdr ...string) *Response {
	r.t.Helper()
	resp, err := r.try(method, url, hdr...)
	if err != nil {
		r.t.Fatal(err)
	}
	return resp
}

func (r *rawConn) try(method, url string, hdr ...string) (*Response, error) {
	r.cseq++
	req := &Request{Method: method, URL: url, Proto: "RTSP/1.0", Header: Header{{"CSeq", strconv.Itoa(r.cseq)}}}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	if _, err := r.c.Write(req.AppendTo(nil)); err != nil {
		return nil, err
	}
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer r.c.SetReadDeadline(time.Time{})
	for {
		it, err := r.rd.Next()
		if err != nil {
			return nil, err
		}
		if it.Kind == KindResponse {
			if it.Resp.Header.Get("CSeq") != strconv.Itoa(r.cseq) {
				return nil, fmt.Errorf("answer CSeq %q, want %d", it.Resp.Header.Get("CSeq"), r.cseq)
			}
			return it.Resp, nil
		}
	}
}

// frames reads interleaved frames until n arrived on channel ch.
func (r *rawConn) frames(ch byte, n int, timeout time.Duration) ([][]byte, error) {
	r.c.SetReadDeadline(time.Now().Add(timeout))
	defer r.c.SetReadDeadline(time.Time{})
	var out [][]byte
	for len(out) < n {
		it, err := r.rd.Next()
		if err != nil {
			return out, err
		}
		if it.Kind == KindFrame && it.Channel == ch {
			out = append(out, append([]byte(nil), it.Payload()...))
		}
	}
	return out, nil
}
