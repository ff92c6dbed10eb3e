package relay_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/xtaci/smux"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/wsconn"
	"github.com/nanodems/connector/mux"
	"github.com/nanodems/connector/relay"
)

// cliSession is the answer of POST /api/cli/sessions.
type cliSession struct {
	ID        string    `json:"id"`
	Token     string    `json:"token"`
	TenantID  string    `json:"tenant_id"`
	UserID    string    `json:"user_id"`
	SiteIDs   []string  `json:"site_ids"`
	Label     string    `json:"label"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	HardCapAt time.Time `json:"hard_cap_at"`
	Command   string    `json:"command"`
}

// mintCLI mints a CLI session for the demo's site as the demo's user.
func mintCLI(t *testing.T, d *demo.Demo, sites ...string) cliSession {
	t.Helper()
	if len(sites) == 0 {
		sites = []string{d.Info.SiteID}
	}
	var s cliSession
	must(t, d.API.Do(context.Background(), "POST", "/api/cli/sessions", map[string]any{"site_ids": sites, "label": "test laptop"}, &s, demo.Bearer(d.Info.Token)))
	return s
}

func cliRelay(d *demo.Demo, token string) cli.Relay {
	return cli.Relay{URL: d.Info.RelayURL, Token: token, Pin: d.Info.CAPin}
}

// addSite creates a second site in the demo's tenant.
func addSite(t *testing.T, d *demo.Demo) string {
	t.Helper()
	var site struct {
		ID string `json:"id"`
	}
	must(t, d.API.Do(context.Background(), "POST", "/api/tenants/"+d.Info.TenantID+"/sites", map[string]any{"name": "Other site", "allow_loopback": true}, &site, demo.Bearer(d.Info.Token)))
	return site.ID
}

// addSiteDevice adds a device with ports on 127.0.0.1 to a site and
// returns its loopback address.
func addSiteDevice(t *testing.T, d *demo.Demo, site string, ports ...int) (id, loopback string) {
	t.Helper()
	var dev struct {
		ID         string `json:"id"`
		LoopbackIP string `json:"loopback_ip"`
	}
	must(t, d.API.Do(context.Background(), "POST", "/api/sites/"+site+"/devices", map[string]any{"host": "127.0.0.1", "ports": ports, "label": "added"}, &dev, demo.Bearer(d.Info.Token)))
	return dev.ID, dev.LoopbackIP
}

func TestCLISessionAPI(t *testing.T) {
	d := startDemo(t)
	ctx := context.Background()
	admin := demo.Admin(d.Info.AdminKey)
	before := time.Now()
	s := mintCLI(t, d)

	if !strings.HasPrefix(s.Token, "ops_") || len(s.Token) != 4+43 {
		t.Fatalf("token %q is not ops_ + 43 chars", s.Token)
	}
	want := fmt.Sprintf("nanodems-tunnel run --relay %s --token %s --ca-pin %s", d.Info.RelayURL, s.Token, d.Info.CAPin)
	if s.Command != want {
		t.Errorf("command\n %s\nwant\n %s", s.Command, want)
	}
	if s.UserID != d.Info.UserID || s.TenantID != d.Info.TenantID || s.Label != "test laptop" {
		t.Errorf("session %+v", s)
	}
	day := 24 * time.Hour
	if s.ExpiresAt.Before(before.Add(30*day)) || s.ExpiresAt.After(time.Now().Add(30*day)) {
		t.Errorf("expires_at %v, want 30 days from now", s.ExpiresAt)
	}
	if !s.HardCapAt.Equal(s.CreatedAt.Add(180 * day)) {
		t.Errorf("hard_cap_at %v, want created_at %v + 180 days", s.HardCapAt, s.CreatedAt)
	}
	wantAudit(t, d, "cli_session.create", s.ID)

	t.Run("refusals", func(t *testing.T) {
		tok := demo.Bearer(d.Info.Token)
		for _, tc := range []struct {
			body   any
			cred   demo.Cred
			status int
			reason string
		}{
			{map[string]any{"site_ids": []string{}}, tok, 400, "site_ids needs 1 to 100 sites"},
			{map[string]any{"site_ids": []string{d.Info.SiteID}, "label": "a\x1bb"}, tok, 400, "control characters"},
			{map[string]any{"site_ids": []string{"site_nope"}}, tok, 404, "not found"},
			{map[string]any{"site_ids": []string{d.Info.SiteID}}, nil, 401, "authentication required"},
			// An ops_ token never mints sessions.
			{map[string]any{"site_ids": []string{d.Info.SiteID}}, demo.Bearer(s.Token), 401, "invalid or revoked credential"},
		} {
			err := d.API.Do(ctx, "POST", "/api/cli/sessions", tc.body, nil, tc.cred)
			var re *cli.RelayError
			if !errors.As(err, &re) || re.Status != tc.status || !strings.Contains(re.Reason, tc.reason) {
				t.Errorf("POST %v: %v, want %d %q", tc.body, err, tc.status, tc.reason)
			}
		}
		// Another tenant's site.
		var ten, usr, ntok struct {
			ID    string `json:"id"`
			Token string `json:"token"`
		}
		must(t, d.API.Do(ctx, "POST", "/api/admin/tenants", map[string]string{"name": "Other"}, &ten, admin))
		must(t, d.API.Do(ctx, "POST", "/api/tenants/"+ten.ID+"/users", map[string]string{"email": "c@other.invalid", "password": "another-password"}, &usr, admin))
		must(t, d.API.Do(ctx, "POST", "/api/users/"+usr.ID+"/tokens", nil, &ntok, admin))
		err := d.API.Do(ctx, "POST", "/api/cli/sessions", map[string]any{"site_ids": []string{d.Info.SiteID}}, nil, demo.Bearer(ntok.Token))
		wantStatus(t, err, 403)
		err = d.API.Do(ctx, "DELETE", "/api/cli/sessions/"+s.ID, nil, nil, demo.Bearer(ntok.Token))
		wantStatus(t, err, 403)
		err = d.API.Do(ctx, "GET", "/api/sites/"+d.Info.SiteID+"/cli-sessions", nil, nil, demo.Bearer(ntok.Token))
		wantStatus(t, err, 403)
		// An admin mints for any tenant, but one tenant per session.
		var other struct {
			ID string `json:"id"`
		}
		must(t, d.API.Do(ctx, "POST", "/api/tenants/"+ten.ID+"/sites", map[string]string{"name": "B"}, &other, admin))
		err = d.API.Do(ctx, "POST", "/api/cli/sessions", map[string]any{"site_ids": []string{d.Info.SiteID, other.ID}}, nil, admin)
		wantStatus(t, err, 400)
		var as cliSession
		must(t, d.API.Do(ctx, "POST", "/api/cli/sessions", map[string]any{"site_ids": []string{other.ID}}, &as, admin))
		if as.TenantID != ten.ID || as.UserID != "" {
			t.Errorf("admin-minted session %+v, want tenant %s and no user", as, ten.ID)
		}
	})

	t.Run("signed-in browser needs its CSRF token", func(t *testing.T) {
		c := browser(t, d)
		signIn(t, d, c, demo.OperatorEmail, d.Info.UserPassword)
		_, home := get(t, c, d.Info.RelayURL+"/sites")
		m := csrfRe.FindStringSubmatch(home)
		if m == nil {
			t.Fatalf("home page has no csrf field:\n%s", home)
		}
		post := func(csrf string) int {
			req, _ := http.NewRequest("POST", d.Info.RelayURL+"/api/cli/sessions", strings.NewReader(`{"site_ids":["`+d.Info.SiteID+`"]}`))
			if csrf != "" {
				req.Header.Set("X-CSRF-Token", csrf)
			}
			resp, err := c.Do(req)
			must(t, err)
			resp.Body.Close()
			return resp.StatusCode
		}
		if code := post(""); code != 403 {
			t.Errorf("cookie without X-CSRF-Token: %d, want 403", code)
		}
		if code := post(m[1]); code != 201 {
			t.Errorf("cookie with X-CSRF-Token: %d, want 201", code)
		}
		resp, list := get(t, c, d.Info.RelayURL+"/api/sites/"+d.Info.SiteID+"/cli-sessions")
		if resp.StatusCode != 200 || !strings.Contains(list, s.ID) {
			t.Errorf("signed-in list: %d %s", resp.StatusCode, list)
		}
		c.CloseIdleConnections()
	})

	t.Run("list and revoke", func(t *testing.T) {
		// Basic authentication mints too (a first session without a token).
		var s2 cliSession
		must(t, d.API.Do(ctx, "POST", "/api/cli/sessions", map[string]any{"site_ids": []string{d.Info.SiteID}, "label": "second"}, &s2,
			func(r *http.Request) { r.SetBasicAuth(demo.OperatorEmail, d.Info.UserPassword) }))
		var list []map[string]any
		must(t, d.API.Do(ctx, "GET", "/api/sites/"+d.Info.SiteID+"/cli-sessions", nil, &list, demo.Bearer(d.Info.Token)))
		if len(list) != 3 || list[0]["id"] != s2.ID || list[2]["id"] != s.ID {
			t.Fatalf("active sessions %v, want %s first and %s last", list, s2.ID, s.ID)
		}
		for _, e := range list {
			for _, k := range []string{"token", "hash"} {
				if _, ok := e[k]; ok {
					t.Errorf("the list shows %q: %v", k, e)
				}
			}
		}
		var rev struct {
			ID        string     `json:"id"`
			RevokedAt *time.Time `json:"revoked_at"`
		}
		must(t, d.API.Do(ctx, "DELETE", "/api/cli/sessions/"+s2.ID, nil, &rev, demo.Bearer(d.Info.Token)))
		if rev.ID != s2.ID || rev.RevokedAt == nil {
			t.Fatalf("revoke answer %+v", rev)
		}
		must(t, d.API.Do(ctx, "GET", "/api/sites/"+d.Info.SiteID+"/cli-sessions", nil, &list, demo.Bearer(d.Info.Token)))
		if len(list) != 2 || list[0]["id"] == s2.ID || list[1]["id"] != s.ID {
			t.Fatalf("active sessions after revoke %v, want %s gone", list, s2.ID)
		}
		wantAudit(t, d, "cli_session.revoke", s2.ID)
		err := d.API.Do(ctx, "DELETE", "/api/cli/sessions/cli_nope", nil, nil, demo.Bearer(d.Info.Token))
		wantStatus(t, err, 404)
		_, err = cli.FetchPlan(ctx, cliRelay(d, s2.Token))
		wantRelayError(t, err, 401, "CLI session revoked")
	})
}

func wantRelayError(t *testing.T, err error, status int, reason string) {
	t.Helper()
	var re *cli.RelayError
	if !errors.As(err, &re) || re.Status != status || re.Reason != reason {
		t.Fatalf("error %v, want %d %q", err, status, reason)
	}
}

func TestCLIPlan(t *testing.T) {
	d := startDemo(t)
	ctx := context.Background()
	other := addSite(t, d)
	s := mintCLI(t, d)
	_, outside := addSiteDevice(t, d, other, 4000)

	p, err := cli.FetchPlan(ctx, cliRelay(d, s.Token))
	must(t, err)
	if p.SessionID != s.ID || p.RefreshSeconds != 60 || !p.HardCapAt.Equal(s.HardCapAt) {
		t.Errorf("plan header %+v", p)
	}
	var dev struct {
		Ports   []int             `json:"ports"`
		Handles map[string]string `json:"handles"`
	}
	must(t, d.API.Do(ctx, "GET", "/api/devices/"+d.Info.DeviceID, nil, &dev, demo.Bearer(d.Info.Token)))
	if len(p.Entries) != 2 {
		t.Fatalf("plan has %d entries, want the demo device's 2 ports: %+v", len(p.Entries), p.Entries)
	}
	for _, e := range p.Entries {
		if e.IP != "127.0.0.2" || e.DeviceID != d.Info.DeviceID || e.SiteID != d.Info.SiteID || e.Label != "Demo camera" || e.Handle != dev.Handles[fmt.Sprint(e.Port)] {
			t.Errorf("entry %+v", e)
		}
		if e.IP == outside {
			t.Errorf("plan lists %s of a site outside the session", outside)
		}
	}
	if p.Entries[0].Port > p.Entries[1].Port {
		t.Errorf("entries not by port: %+v", p.Entries)
	}

	// A session over both sites sees both.
	both := mintCLI(t, d, d.Info.SiteID, other)
	p, err = cli.FetchPlan(ctx, cliRelay(d, both.Token))
	must(t, err)
	if len(p.Entries) != 3 || p.Entries[2].IP != outside || p.Entries[2].Port != 4000 {
		t.Fatalf("two-site plan %+v", p.Entries)
	}

	_, err = cli.FetchPlan(ctx, cliRelay(d, ""))
	wantRelayError(t, err, 401, "authentication required")
	_, err = cli.FetchPlan(ctx, cliRelay(d, "ops_"+strings.Repeat("A", 43)))
	wantRelayError(t, err, 401, "invalid or revoked credential")
	// An nt_ token is not a CLI session.
	_, err = cli.FetchPlan(ctx, cliRelay(d, d.Info.Token))
	wantRelayError(t, err, 401, "invalid or revoked credential")
}

func TestCLIRawTunnel(t *testing.T) {
	d := startDemo(t)
	ctx := context.Background()
	s := mintCLI(t, d)
	r := cliRelay(d, s.Token)
	echo := uint16(d.Echo.Addr().Port)

	c, err := cli.DialRawTunnel(ctx, r, "127.0.0.2", echo)
	must(t, err)
	must(t, roundTrip(c, 4<<20))
	c.Close()

	other := addSite(t, d)
	_, outside := addSiteDevice(t, d, other, 4000)
	for _, tc := range []struct {
		ip     string
		port   uint16
		status int
		reason string
	}{
		{"127.0.0.2", 1, 403, "127.0.0.2:1 is not in this session's scope"},
		{outside, 4000, 403, outside + ":4000 is not in this session's scope"},
		{"127.0.0.1", echo, 403, fmt.Sprintf("127.0.0.1:%d is not in this session's scope", echo)},
		{"camera", 80, 400, `bad request: "camera" is not an IPv4 address`},
	} {
		_, err := cli.DialRawTunnel(ctx, r, tc.ip, tc.port)
		wantRelayError(t, err, tc.status, tc.reason)
	}
	// A refused port is the device's answer, not a scope problem.
	closed := freePort(t)
	_, ip := addSiteDevice(t, d, d.Info.SiteID, closed)
	must(t, d.WaitAgent(ctx, 5*time.Second))
	_, err = cli.DialRawTunnel(ctx, r, ip, uint16(closed))
	wantRelayError(t, err, 502, "device unreachable: connection refused")

	// A plain GET does not open the device port.
	req, _ := http.NewRequest("GET", d.Info.RelayURL+fmt.Sprintf("/api/cli/raw-tunnel/127.0.0.2/%d", echo), nil)
	req.Header.Set("Authorization", "Bearer "+s.Token)
	resp, err := d.API.Client.Do(req)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("plain GET: %d, want 426", resp.StatusCode)
	}

	// Revoking cuts an open raw tunnel.
	c, err = cli.DialRawTunnel(ctx, r, "127.0.0.2", echo)
	must(t, err)
	defer c.Close()
	must(t, d.API.Do(ctx, "DELETE", "/api/cli/sessions/"+s.ID, nil, nil, demo.Bearer(d.Info.Token)))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("raw tunnel after revoke: read %v, want it cut", err)
	}
	_, err = cli.DialRawTunnel(ctx, r, "127.0.0.2", echo)
	wantRelayError(t, err, 401, "CLI session revoked")
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// muxClient speaks /api/cli/mux directly, to see the relay's statuses
// without the CLI's own plan check in front.
type muxClient struct {
	ws   *websocket.Conn
	sess *smux.Session
	dead chan struct{} // closed when the session can no longer work
	err  error         // why, once dead is closed
}

// dialMuxOn is dialMux on the CLI transport named: "ws" (/api/cli/mux)
// or "raw" (ALPN, cli_raw.go).
func dialMuxOn(t *testing.T, d *demo.Demo, token, transport string) *muxClient {
	t.Helper()
	if transport == "raw" {
		return dialRawMux(t, d, token)
	}
	return dialMux(t, d, token)
}

func dialMux(t *testing.T, d *demo.Demo, token string) *muxClient {
	t.Helper()
	client := cliRelay(d, token).HTTPClient()
	defer client.CloseIdleConnections()
	u := "wss" + strings.TrimPrefix(d.Info.RelayURL, "https") + "/api/cli/mux"
	ws, _, err := websocket.Dial(context.Background(), u, &websocket.DialOptions{HTTPClient: client, HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	must(t, err)
	ws.SetReadLimit(1 << 20) // smux frames are up to 64 KiB
	sess, err := smux.Client(wsconn.New(ws, wsconn.Addr("l"), wsconn.Addr("r")), mux.Config())
	must(t, err)
	m := &muxClient{ws: ws, sess: sess, dead: make(chan struct{})}
	go func() {
		// smux reports a broken connection to AcceptStream, not CloseChan.
		defer close(m.dead)
		_, m.err = sess.AcceptStream()
	}()
	t.Cleanup(func() { sess.Close(); ws.CloseNow(); <-m.dead })
	return m
}

// open opens a stream to host:port and returns the relay's status.
func (m *muxClient) open(host string, port uint16) (*smux.Stream, error) {
	st, err := m.sess.OpenStream()
	if err != nil {
		return nil, err
	}
	st.SetDeadline(time.Now().Add(20 * time.Second))
	if err := mux.WriteHeader(st, mux.Header{Host: host, Port: port}); err != nil {
		return nil, err
	}
	if err := mux.ReadStatus(st); err != nil {
		st.Close()
		return nil, err
	}
	st.SetDeadline(time.Time{})
	return st, nil
}

func wantMuxStatus(t *testing.T, err error, code mux.Code, reason string) {
	t.Helper()
	var se *mux.StatusError
	if !errors.As(err, &se) || se.Code != code || !strings.Contains(se.Reason, reason) {
		t.Fatalf("status %v, want %v %q", err, code, reason)
	}
}

func TestCLIMuxStatuses(t *testing.T) { forCLITransports(t, testCLIMuxStatuses) }

func testCLIMuxStatuses(t *testing.T, transport string) {
	d := startDemo(t)
	ctx := context.Background()
	s := mintCLI(t, d)
	m := dialMuxOn(t, d, s.Token, transport)
	echo := uint16(d.Echo.Addr().Port)

	st, err := m.open("127.0.0.2", echo)
	must(t, err)
	must(t, roundTrip(mux.NewStream(st), 1<<20))

	_, err = m.open("127.0.0.2", 1)
	wantMuxStatus(t, err, mux.NotAllowed, "127.0.0.2:1 is not in this session's scope")
	_, err = m.open("camera.local", 80)
	wantMuxStatus(t, err, mux.NotAllowed, "camera.local:80 is not in this session's scope")

	closed := freePort(t)
	_, ip := addSiteDevice(t, d, d.Info.SiteID, closed)
	must(t, d.WaitAgent(ctx, 5*time.Second))
	_, err = m.open(ip, uint16(closed))
	wantMuxStatus(t, err, mux.Refused, "connection refused")

	// A port removed from its device leaves the scope at once, even for a
	// mux that has used it (the relay remembers addresses per mux).
	other, err := demo.StartEcho("127.0.0.1:0")
	must(t, err)
	defer other.Close()
	id, ip2 := addSiteDevice(t, d, d.Info.SiteID, other.Addr().Port)
	must(t, d.WaitAgent(ctx, 5*time.Second))
	for range 2 {
		st, err = m.open(ip2, uint16(other.Addr().Port))
		must(t, err)
		must(t, roundTrip(mux.NewStream(st), 1000))
	}
	must(t, d.API.Do(ctx, "PATCH", "/api/devices/"+id, map[string]any{"ports": []int{closed}}, nil, demo.Bearer(d.Info.Token)))
	_, err = m.open(ip2, uint16(other.Addr().Port))
	wantMuxStatus(t, err, mux.NotAllowed, fmt.Sprintf("%s:%d is not in this session's scope", ip2, other.Addr().Port))

	// The session is the relay's only count of this CLI's connections.
	var list []struct {
		ID          string `json:"id"`
		Connections int    `json:"connections"`
	}
	must(t, d.API.Do(ctx, "GET", "/api/sites/"+d.Info.SiteID+"/cli-sessions", nil, &list, demo.Bearer(d.Info.Token)))
	if len(list) != 1 || list[0].Connections != 1 {
		t.Fatalf("sessions %+v, want one with one connection", list)
	}

	must(t, d.API.Do(ctx, "POST", "/api/agents/"+d.Info.AgentID+"/revoke", nil, nil, demo.Admin(d.Info.AdminKey)))
	_, err = m.open("127.0.0.2", echo)
	wantMuxStatus(t, err, mux.AgentError, "agent reconnecting")
}

func TestCLIRevokeCutsMux(t *testing.T) { forCLITransports(t, testCLIRevokeCutsMux) }

func testCLIRevokeCutsMux(t *testing.T, transport string) {
	d := startDemo(t)
	ctx := context.Background()
	s := mintCLI(t, d)
	m := dialMuxOn(t, d, s.Token, transport)
	st, err := m.open("127.0.0.2", uint16(d.Echo.Addr().Port))
	must(t, err)
	defer st.Close()

	var rev struct {
		Closed int `json:"closed_connections"`
	}
	start := time.Now()
	must(t, d.API.Do(ctx, "DELETE", "/api/cli/sessions/"+s.ID, nil, &rev, demo.Bearer(d.Info.Token)))
	if rev.Closed != 1 {
		t.Errorf("closed_connections %d, want 1", rev.Closed)
	}
	select {
	case <-m.dead:
	case <-time.After(2 * time.Second):
		t.Fatal("mux session still open 2 s after revoke")
	}
	t.Logf("mux closed %v after revoke", time.Since(start).Round(time.Millisecond))
	if transport == "raw" {
		// The raw transport has no close frame: the reason comes with
		// the refusal of the next hello.
		_, err := rawHello(t, d, s.Token)
		var re *cli.RelayError
		if !errors.As(err, &re) || re.Status != 401 || re.Reason != "CLI session revoked" {
			t.Fatalf("raw hello after revoke: %v, want 401 CLI session revoked", err)
		}
		return
	}
	err = m.err
	if websocket.CloseStatus(err) != websocket.StatusPolicyViolation || !strings.Contains(err.Error(), "CLI session revoked") {
		t.Errorf("WebSocket ended with %v, want policy violation \"CLI session revoked\"", err)
	}
	// And it cannot come back.
	client := cliRelay(d, s.Token).HTTPClient()
	defer client.CloseIdleConnections()
	u := "wss" + strings.TrimPrefix(d.Info.RelayURL, "https") + "/api/cli/mux"
	_, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: client, HTTPHeader: http.Header{"Authorization": {"Bearer " + s.Token}}})
	if err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("mux after revoke: %v, want 401", err)
	}
}

// clock is an injectable relay clock: real time plus an offset.
type clock struct{ off atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) advance(d time.Duration) { c.off.Add(int64(d)) }

func TestCLISessionSlidesAndCaps(t *testing.T) {
	clk := &clock{}
	d := startDemo(t, func(c *relay.Config) { c.Now = clk.Now })
	ctx := context.Background()
	day := 24 * time.Hour
	s := mintCLI(t, d)
	r := cliRelay(d, s.Token)
	near := func(a, b time.Time) bool { return a.Sub(b).Abs() < time.Minute }

	// Each use pushes the expiry to 30 days after it.
	clk.advance(29 * day)
	p, err := cli.FetchPlan(ctx, r)
	must(t, err)
	if !near(p.ExpiresAt, clk.Now().Add(30*day)) {
		t.Fatalf("after a plan fetch on day 29: expires %v, want %v", p.ExpiresAt, clk.Now().Add(30*day))
	}
	// A mux stream open is a use too.
	clk.advance(20 * day)
	m := dialMux(t, d, s.Token) // day 49: a use
	clk.advance(25 * day)       // day 74
	st, err := m.open("127.0.0.2", uint16(d.Echo.Addr().Port))
	must(t, err)
	st.Close()
	var list []struct {
		ExpiresAt  time.Time `json:"expires_at"`
		LastUsedAt time.Time `json:"last_used_at"`
	}
	must(t, d.API.Do(ctx, "GET", "/api/sites/"+d.Info.SiteID+"/cli-sessions", nil, &list, demo.Bearer(d.Info.Token)))
	if len(list) != 1 || !near(list[0].ExpiresAt, clk.Now().Add(30*day)) || !near(list[0].LastUsedAt, clk.Now()) {
		t.Fatalf("after a stream open on day 74: %+v, want expiry %v", list, clk.Now().Add(30*day))
	}
	// A raw tunnel too; and the slide never passes the hard cap.
	for range 4 { // days 99, 124, 149, 174
		clk.advance(25 * day)
		c, err := cli.DialRawTunnel(ctx, r, "127.0.0.2", uint16(d.Echo.Addr().Port))
		must(t, err)
		c.Close()
	}
	p, err = cli.FetchPlan(ctx, r)
	must(t, err)
	if !p.ExpiresAt.Equal(s.HardCapAt) {
		t.Fatalf("on day 174: expires %v, want the hard cap %v", p.ExpiresAt, s.HardCapAt)
	}
	// At the cap it is over, used or not.
	clk.advance(6 * day)
	_, err = cli.FetchPlan(ctx, r)
	wantRelayError(t, err, 401, "CLI session expired; issue a new one")
	_, err = m.open("127.0.0.2", uint16(d.Echo.Addr().Port))
	wantMuxStatus(t, err, mux.NotAllowed, "CLI session expired; issue a new one")
	select {
	case <-m.dead:
	case <-time.After(2 * time.Second):
		t.Fatal("mux of an expired session still open")
	}
	_, err = cli.Open(ctx, cli.Options{Relay: r, NoBind: true})
	var refused *cli.SessionRefusedError
	if !errors.As(err, &refused) || err.Error() != "the relay refused this CLI session: CLI session expired; issue a new one" {
		t.Fatalf("Open of an expired session: %v", err)
	}

	// Unused for 30 days, a session expires long before its cap.
	s2 := mintCLI(t, d)
	clk.advance(30*day - time.Second)
	_, err = cli.FetchPlan(ctx, cliRelay(d, s2.Token))
	must(t, err)
	clk.advance(30 * day)
	_, err = cli.FetchPlan(ctx, cliRelay(d, s2.Token))
	wantRelayError(t, err, 401, "CLI session expired; issue a new one")
	must(t, d.API.Do(ctx, "GET", "/api/sites/"+d.Info.SiteID+"/cli-sessions", nil, &list, demo.Bearer(d.Info.Token)))
	if len(list) != 0 {
		t.Fatalf("expired sessions listed as active: %+v", list)
	}
}

// TestCLIMuxSessionCache: a mux keeps its session row between stream opens
// (cliSessionFresh), but never refuses on a stale copy: a slide made by
// another path (here a plan fetch) right before counts.
func TestCLIMuxSessionCache(t *testing.T) {
	clk := &clock{}
	d := startDemo(t, func(c *relay.Config) { c.Now = clk.Now })
	ctx := context.Background()
	day := 24 * time.Hour
	s := mintCLI(t, d)
	m := dialMux(t, d, s.Token)
	echo := uint16(d.Echo.Addr().Port)
	st, err := m.open("127.0.0.2", echo) // the mux reads and caches the row
	must(t, err)
	st.Close()

	clk.advance(29 * day)
	_, err = cli.FetchPlan(ctx, cliRelay(d, s.Token)) // slides to day 59
	must(t, err)
	clk.advance(2 * day) // day 31: past the cached expiry, not the stored one
	st, err = m.open("127.0.0.2", echo)
	must(t, err)
	must(t, roundTrip(mux.NewStream(st), 1000))
	st.Close()

	clk.advance(30 * day) // day 61: expired in the store too
	_, err = m.open("127.0.0.2", echo)
	wantMuxStatus(t, err, mux.NotAllowed, "CLI session expired; issue a new one")
}
