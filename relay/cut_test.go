package relay_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/nanodems/connector/agent"
	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/testwait"
	"github.com/nanodems/connector/internal/wsconn"
)

// cutBound is how long a test waits for a tunnel to end after the decision
// to end it. The goal is well under a second (the tests log the figure);
// the bound is generous so a loaded 2-core machine does not flake.
const cutBound = 5 * time.Second

// reader drains one open tunnel in the background and records how and when
// its reading ended.
type reader struct {
	name string
	n    atomic.Int64
	done chan struct{}
	err  error     // set before done is closed
	at   time.Time // set before done is closed
}

func startReader(name string, r io.Reader) *reader {
	rd := &reader{name: name, done: make(chan struct{})}
	go func() {
		defer close(rd.done)
		buf := make([]byte, 64<<10)
		for {
			n, err := r.Read(buf)
			rd.n.Add(int64(n))
			if err != nil {
				rd.err, rd.at = err, time.Now()
				return
			}
		}
	}()
	return rd
}

// waitBytes waits until the reader has seen at least n bytes: the tunnel
// works end to end.
func (rd *reader) waitBytes(t *testing.T, n int64) {
	t.Helper()
	if err := testwait.Until(10*time.Second, func() error {
		select {
		case <-rd.done:
			t.Fatalf("%s ended before it carried %d bytes: %v", rd.name, n, rd.err)
		default:
		}
		if got := rd.n.Load(); got < n {
			return fmt.Errorf("%s carried %d bytes, want %d", rd.name, got, n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// wantCut waits for the reader to end, and reports whether it did. A
// tunnel still open cutBound after since fails the test.
func (rd *reader) wantCut(t *testing.T, since time.Time) bool {
	t.Helper()
	select {
	case <-rd.done:
	case <-time.After(time.Until(since.Add(cutBound))):
		t.Errorf("%s still open %v after it should have been cut (%d bytes read)", rd.name, cutBound, rd.n.Load())
		return false
	}
	t.Logf("%s cut %v after the decision: %v", rd.name, rd.at.Sub(since).Round(time.Millisecond), rd.err)
	return true
}

// wantOpen checks that the reader is still running.
func (rd *reader) wantOpen(t *testing.T) {
	t.Helper()
	select {
	case <-rd.done:
		t.Errorf("%s ended, want it left open: %v", rd.name, rd.err)
	default:
	}
}

// echoTunnel writes a greeting through a tunnel to the echo target and
// drains it; the echo proves the tunnel carries bytes both ways.
func echoTunnel(t *testing.T, name string, c net.Conn) *reader {
	t.Helper()
	rd := startReader(name, c)
	_, err := c.Write([]byte("hello"))
	must(t, err)
	rd.waitBytes(t, 5)
	return rd
}

// The tunnels of a revoked agent end, whether they run on its shared
// session or on dedicated connections (asked for at open, or moved there
// by their byte rate).
func TestAgentRevokeCutsDedicatedTunnels(t *testing.T) {
	ctx := context.Background()
	d, err := demo.Start(ctx, demo.Options{
		DataDir: t.TempDir(), Logger: quietLogger(),
		Agent: func(c *agent.Config) { c.DedicatedRate = 1 << 20 },
	})
	must(t, err)
	t.Cleanup(d.Close)

	shared, err := cli.DialTunnel(ctx, operator(d), d.Info.EchoHandle)
	must(t, err)
	defer shared.Close()
	sharedR := echoTunnel(t, "shared tunnel", shared)

	atOpen, err := cli.DialDedicated(ctx, operator(d), d.Info.EchoHandle)
	must(t, err)
	defer atOpen.Close()
	atOpenR := echoTunnel(t, "dedicated-at-open tunnel", atOpen)

	// A bulk writer moves this one by rate; it stops writing once moved.
	byRate, err := cli.DialTunnel(ctx, operator(d), d.Info.EchoHandle)
	must(t, err)
	defer byRate.Close()
	byRateR := startReader("moved-by-rate tunnel", byRate)
	stop := make(chan struct{})
	wrote := make(chan error, 1)
	go func() {
		chunk := make([]byte, 64<<10)
		for {
			select {
			case <-stop:
				wrote <- nil
				return
			default:
			}
			if _, err := byRate.Write(chunk); err != nil {
				wrote <- err
				return
			}
		}
	}()
	err = testwait.Until(20*time.Second, func() error {
		if n := dedicatedTotal(t, d); n < 2 {
			return fmt.Errorf("no tunnel moved by rate (dedicated_total %d)", n)
		}
		return nil
	})
	close(stop)
	if err != nil {
		t.Fatal(err)
	}
	must(t, <-wrote)

	var rev struct {
		Disconnected bool `json:"disconnected"`
	}
	start := time.Now()
	must(t, d.API.Do(ctx, "POST", "/api/agents/"+d.Info.AgentID+"/revoke", nil, &rev, demo.Admin(d.Info.AdminKey)))
	t.Logf("revoke answered in %v", time.Since(start).Round(time.Millisecond))
	if !rev.Disconnected {
		t.Fatal("revoke answered disconnected: false for a connected agent")
	}
	for _, rd := range []*reader{sharedR, atOpenR, byRateR} {
		if rd.wantCut(t, start) && rd.err == io.EOF {
			t.Errorf("%s ended cleanly; a revoked agent's tunnel must read as cut", rd.name)
		}
	}
}

// agentLink sits between the agent and the relay's agent listener, so a
// test can freeze the agent's connections as SIGSTOP would (no byte moves
// either way, nothing is closed) and then break them on either side.
type agentLink struct {
	ln net.Listener

	mu     sync.Mutex
	target string
	legs   []*linkLeg     // per agent connection, in accept order
	frozen bool           // freezeAll: later connections are frozen too
	closed chan struct{}  // closed by Close
	wg     sync.WaitGroup // accept and copy goroutines
	err    atomic.Value   // an error of route, for the test to report
}

// linkLeg is one agent connection through the link.
type linkLeg struct {
	agent, relay net.Conn      // the link's ends towards each
	open         chan struct{} // closed while bytes may pass; under agentLink.mu
}

func newAgentLink(t *testing.T) *agentLink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	l := &agentLink{ln: ln, closed: make(chan struct{})}
	l.wg.Add(1)
	go l.serve()
	return l
}

// route points the agent at the link, and the link at the relay address
// the agent was enrolled with.
func (l *agentLink) route(c *agent.Config) {
	id, err := agent.LoadIdentity(c.Dir)
	if err != nil {
		l.err.Store(err)
		return
	}
	l.mu.Lock()
	l.target = id.RelayAddr
	l.mu.Unlock()
	c.RelayAddrs = []string{l.ln.Addr().String()}
}

func (l *agentLink) serve() {
	defer l.wg.Done()
	for {
		a, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		target := l.target
		l.mu.Unlock()
		r, err := net.Dial("tcp", target)
		if err != nil {
			a.Close()
			continue
		}
		l.mu.Lock()
		select {
		case <-l.closed:
			l.mu.Unlock()
			a.Close()
			r.Close()
			return
		default:
		}
		leg := &linkLeg{agent: a, relay: r, open: make(chan struct{})}
		if !l.frozen {
			close(leg.open)
		}
		l.legs = append(l.legs, leg)
		l.wg.Add(2)
		l.mu.Unlock()
		go l.pipe(leg, r, a)
		go l.pipe(leg, a, r)
	}
}

// pipe copies src to dst, holding each chunk, and the end of src, while
// the leg is frozen: a frozen side hears nothing, not even a close.
func (l *agentLink) pipe(leg *linkLeg, dst, src net.Conn) {
	defer l.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		l.mu.Lock()
		open := leg.open
		l.mu.Unlock()
		select {
		case <-open:
		case <-l.closed:
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if tc, ok := dst.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			return
		}
	}
}

// freeze stops every byte of the connections so far, in both directions;
// they stay open. Later connections pass.
func (l *agentLink) freeze() {
	l.mu.Lock()
	for _, leg := range l.legs {
		leg.open = make(chan struct{})
	}
	l.mu.Unlock()
}

// freezeAll is freeze, and every later connection is frozen from its
// start: the agent, which times its frozen session out as the relay does,
// cannot come back through the link.
func (l *agentLink) freezeAll() {
	l.mu.Lock()
	l.frozen = true
	l.mu.Unlock()
	l.freeze()
}

// conns is how many agent connections the link has carried.
func (l *agentLink) conns() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.legs)
}

// breakRelaySide closes the relay's end of the i-th agent connection: the
// relay loses that connection while the agent, frozen, notices nothing.
func (l *agentLink) breakRelaySide(i int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.legs[i].relay.Close()
}

// breakAgentSide closes the agent's end of the i-th agent connection: the
// agent loses it while the relay, frozen, notices nothing.
func (l *agentLink) breakAgentSide(i int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.legs[i].agent.Close()
}

func (l *agentLink) Close() {
	l.mu.Lock()
	select {
	case <-l.closed:
		l.mu.Unlock()
		return
	default:
	}
	close(l.closed)
	l.ln.Close()
	for _, leg := range l.legs {
		leg.agent.Close()
		leg.relay.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// startLinkedDemo starts a demo whose agent reaches the relay through an
// agentLink; the link is closed before the demo at cleanup.
func startLinkedDemo(t *testing.T) (*demo.Demo, *agentLink) {
	t.Helper()
	l := newAgentLink(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := demo.Start(ctx, demo.Options{DataDir: t.TempDir(), Logger: quietLogger(), Agent: l.route})
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	t.Cleanup(l.Close) // first: unblocks everything the frozen link holds
	if err, _ := l.err.Load().(error); err != nil {
		t.Fatal(err)
	}
	return d, l
}

// agentOnline reads the agent's online flag from the API.
func agentOnline(t *testing.T, d *demo.Demo) bool {
	t.Helper()
	var agents []struct {
		Online bool `json:"online"`
	}
	must(t, d.API.Do(context.Background(), "GET", "/api/sites/"+d.Info.SiteID+"/agents", nil, &agents, demo.Admin(d.Info.AdminKey)))
	return len(agents) == 1 && agents[0].Online
}

// openDedicated opens a dedicated tunnel through a linked demo and waits
// until the agent's dedicated connection is through the link and attached.
func openDedicated(t *testing.T, d *demo.Demo, l *agentLink) (net.Conn, *reader) {
	t.Helper()
	c, err := cli.DialDedicated(context.Background(), operator(d), d.Info.EchoHandle)
	must(t, err)
	t.Cleanup(func() { c.Close() })
	rd := echoTunnel(t, "dedicated tunnel", c)
	if err := testwait.Until(10*time.Second, func() error {
		if c, n := l.conns(), dedicatedTotal(t, d); c < 2 || n < 1 {
			return fmt.Errorf("dedicated connection never attached (%d agent connections, dedicated_total %d)", c, n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Bytes after the move cross the dedicated connection.
	_, err = c.Write([]byte("after the move"))
	must(t, err)
	rd.waitBytes(t, 5+int64(len("after the move")))
	return c, rd
}

// A frozen agent whose shared session the relay loses: its dedicated
// tunnel gets no close from the agent, so the relay must end it with the
// session.
func TestSessionLossCutsDedicatedTunnels(t *testing.T) {
	d, l := startLinkedDemo(t)
	_, rd := openDedicated(t, d, l)

	l.freeze()
	start := time.Now()
	l.breakRelaySide(0) // the shared session, the agent's first connection
	rd.wantCut(t, start)
}

// The agent's side of the same: a session the agent loses while the relay
// end hangs (frozen, or a path that drops everything) ends the agent's
// dedicated tunnels too, so the agent reconnects at once rather than when
// the relay lets go of them.
func TestAgentSessionLossEndsItsTunnels(t *testing.T) {
	d, l := startLinkedDemo(t)
	_, rd := openDedicated(t, d, l)

	l.freeze()
	start := time.Now()
	l.breakAgentSide(0)
	if err := testwait.Until(cutBound, func() error {
		if !d.Agent.Connected() || l.conns() < 3 {
			return fmt.Errorf("agent not back after it lost its session (%d connections through the link)", l.conns())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("agent reconnected %v after it lost its session", time.Since(start).Round(time.Millisecond))
	// The relay took the new session in place of the frozen one, and
	// ended the old session's tunnel with it.
	rd.wantCut(t, start)
}

// A frozen agent: the relay drops its shared session when the smux
// keepalive times out (30 to 60 s), and its dedicated tunnel ends with it.
func TestKeepaliveTimeoutCutsDedicatedTunnels(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the 30 s keepalive timeout")
	}
	d, l := startLinkedDemo(t)
	_, rd := openDedicated(t, d, l)

	frozen := time.Now()
	// The agent times the frozen session out too, at the same 60 s, and
	// would come back on a new connection before the relay had dropped the
	// old one if the link let it: the agent is then online again, and the
	// drop could not be seen as the agent going offline.
	l.freezeAll()
	// smux checks every KeepAliveTimeout (30 s) whether anything came
	// since the last check, so a session frozen just after a check ends at
	// the second one (60 s here, every time). A check that finds the
	// session's receive buffer full (a tunnel's reader behind) does not
	// close it, and the next one does.
	testwait.For(t, 150*time.Second, "the relay to drop the frozen agent's session", func() bool { return !agentOnline(t, d) })
	// The API shows the agent offline a poll (and a moment) after the
	// relay dropped the session; the tunnel, cut first, may end before.
	dropped := time.Now()
	t.Logf("relay dropped the frozen agent's session within %v of the freeze", dropped.Sub(frozen).Round(time.Millisecond))
	if rd.wantCut(t, dropped) {
		t.Logf("dedicated tunnel ended %v after the freeze", rd.at.Sub(frozen).Round(time.Millisecond))
		if early := dropped.Sub(rd.at); early > cutBound {
			t.Errorf("dedicated tunnel ended %v before the session was dropped: %v", early, rd.err)
		}
	}
}

// mintToken mints another API token for the demo operator.
func mintToken(t *testing.T, d *demo.Demo) (id, token string) {
	t.Helper()
	var tok struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	must(t, d.API.Do(context.Background(), "POST", "/api/users/"+d.Info.UserID+"/tokens", nil, &tok, demo.Admin(d.Info.AdminKey)))
	return tok.ID, tok.Token
}

// wsURL is the relay's WebSocket URL for path.
func wsURL(d *demo.Demo, path string) string {
	return "wss" + strings.TrimPrefix(d.Info.RelayURL, "https") + path
}

// proxyStream opens the demo camera's endless event stream through /c/
// with c and the given credential header, and drains it.
func proxyStream(t *testing.T, d *demo.Demo, name string, c *http.Client, hdr http.Header) *reader {
	t.Helper()
	req, _ := http.NewRequest("GET", d.Info.RelayURL+"/c/"+d.Info.HTTPHandle+"/events", nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	must(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		t.Fatalf("%s: status %d", name, resp.StatusCode)
	}
	rd := startReader(name, bufio.NewReader(resp.Body))
	rd.waitBytes(t, 1)
	return rd
}

// proxyWebSocket opens the demo camera's WebSocket echo through /c/ with c
// and the given credential header, and drains it.
func proxyWebSocket(t *testing.T, d *demo.Demo, name string, c *http.Client, hdr http.Header) *reader {
	t.Helper()
	ws, _, err := websocket.Dial(context.Background(), wsURL(d, "/c/"+d.Info.HTTPHandle+"/ws/echo"), &websocket.DialOptions{HTTPClient: c, HTTPHeader: hdr})
	must(t, err)
	t.Cleanup(func() { ws.CloseNow() })
	conn := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	rd := startReader(name, conn)
	_, err = conn.Write([]byte("hello"))
	must(t, err)
	rd.waitBytes(t, 5)
	return rd
}

// Revoking an nt_ token cuts every tunnel it opened, on every access path,
// and only those.
func TestTokenRevokeCutsItsTunnels(t *testing.T) {
	d := startDemo(t)
	ctx := context.Background()
	id, tok := mintToken(t, d)
	r := cli.Relay{URL: d.Info.RelayURL, Token: tok, Pin: d.Info.CAPin}
	bearer := http.Header{"Authorization": {"Bearer " + tok}}
	client := r.HTTPClient()
	defer client.CloseIdleConnections()

	c1, err := cli.DialTunnel(ctx, r, d.Info.EchoHandle)
	must(t, err)
	defer c1.Close()
	c2, err := cli.DialDedicated(ctx, r, d.Info.EchoHandle)
	must(t, err)
	defer c2.Close()
	cut := []*reader{
		echoTunnel(t, "WebSocket tunnel", c1),
		echoTunnel(t, "dedicated WebSocket tunnel", c2),
		proxyStream(t, d, "/c/ event stream", client, bearer),
		proxyWebSocket(t, d, "/c/ WebSocket", client, bearer),
	}
	// Another token of the same user keeps its tunnel.
	other, err := cli.DialTunnel(ctx, operator(d), d.Info.EchoHandle)
	must(t, err)
	defer other.Close()
	otherR := echoTunnel(t, "other token's tunnel", other)

	start := time.Now()
	must(t, d.API.Do(ctx, "DELETE", "/api/users/"+d.Info.UserID+"/tokens/"+id, nil, nil, demo.Admin(d.Info.AdminKey)))
	for _, rd := range cut {
		rd.wantCut(t, start)
	}
	otherR.wantOpen(t)
	_, err = other.Write([]byte("still here"))
	must(t, err)
	otherR.waitBytes(t, 5+int64(len("still here")))
	wantAuditDetail(t, d, "token.revoke", id, fmt.Sprintf("tunnels closed: %d", len(cut)))

	// A tunnel the token opens after the revocation is refused outright.
	_, err = cli.DialTunnel(ctx, r, d.Info.EchoHandle)
	wantRelayError(t, err, 401, "invalid or revoked credential")
}

// Signing out cuts every tunnel the browser session opened, and only
// those: another session of the same user keeps its own.
func TestSignOutCutsItsTunnels(t *testing.T) {
	d := startDemo(t)
	c := browser(t, d)
	signIn(t, d, c, demo.OperatorEmail, d.Info.UserPassword)
	otherBrowser := browser(t, d)
	signIn(t, d, otherBrowser, demo.OperatorEmail, d.Info.UserPassword)

	ws, _, err := websocket.Dial(context.Background(), wsURL(d, "/api/tunnel/"+d.Info.EchoHandle), &websocket.DialOptions{HTTPClient: c})
	must(t, err)
	defer ws.CloseNow()
	tunnel := wsconn.New(ws, wsconn.Addr("l"), wsconn.Addr("r"))
	cut := []*reader{
		echoTunnel(t, "signed-in WebSocket tunnel", tunnel),
		proxyStream(t, d, "/c/ event stream", c, nil),
		proxyWebSocket(t, d, "/c/ WebSocket", c, nil),
	}
	otherR := proxyStream(t, d, "other session's /c/ event stream", otherBrowser, nil)

	u, _ := url.Parse(d.Info.RelayURL)
	var session string
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "nd_session" {
			session = ck.Value
		}
	}
	resp, page := get(t, c, d.Info.RelayURL+"/sites")
	m := csrfRe.FindStringSubmatch(page)
	if resp.StatusCode != 200 || m == nil || session == "" {
		t.Fatalf("home page: %d (session cookie %v)", resp.StatusCode, session != "")
	}
	start := time.Now()
	resp, err = c.PostForm(d.Info.RelayURL+"/logout", url.Values{"csrf": {m[1]}})
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	for _, rd := range cut {
		rd.wantCut(t, start)
	}
	otherR.wantOpen(t)
	wantAuditDetail(t, d, "user.signout", d.Info.UserID, fmt.Sprintf("tunnels closed: %d", len(cut)))
}
