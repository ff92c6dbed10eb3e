package relay_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/coder/websocket"

	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/testwait"
	"github.com/nanodems/connector/internal/wsconn"
	"github.com/nanodems/connector/mux"
	"github.com/nanodems/connector/relay/secret"
	"github.com/nanodems/connector/relay/store"
)

// revokeBound is the requirement: a revoked credential's tunnels are
// closed within a second of the revocation, wherever it was made.
const revokeBound = time.Second

// revokeDemo is a demo with the RTSP camera, and a store of its own on the
// relay's database: a write through it is another relay's write, which
// the demo relay hears of through the change feed only (credConns, shared
// by every relay of a process, is not involved).
type revokeDemo struct {
	*demo.Demo
	other *store.SQLite
}

func startRevokeDemo(t *testing.T) *revokeDemo {
	t.Helper()
	root := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := demo.Start(ctx, demo.Options{DataDir: root, Logger: quietLogger(), RTSPCamera: true})
	must(t, err)
	t.Cleanup(d.Close)
	other, err := store.OpenSQLite(filepath.Join(root, "relay", "relay.db"))
	must(t, err)
	t.Cleanup(func() { other.Close() })
	return &revokeDemo{Demo: d, other: other}
}

// credential is one revocable credential, fresh for one subtest, and how
// each access path is opened with it.
type credential struct {
	client *http.Client // HTTPS client for /api/tunnel and /c/
	hdr    http.Header  // its credential header (nil for a cookie)
	webHdr http.Header  // on /c/, if not hdr
	// rtspURL mints a player URL with the credential.
	rtspURL func(t *testing.T) string
	// cliToken is the ops_ token whose mux the test opens.
	cliToken string
	// revokeHere revokes through the demo relay's API; revokeElsewhere
	// writes the revocation as another relay would.
	revokeHere, revokeElsewhere func(t *testing.T)
	// audit is the row the demo relay writes for a revocation made here
	// (action, target, detail), auditElsewhere the target of its
	// credential.cut row for one made elsewhere.
	auditAction, auditTarget, auditDetail string
	auditElsewhere                        string
}

func (c *credential) web() http.Header {
	if c.webHdr != nil {
		return c.webHdr
	}
	return c.hdr
}

// accessPath opens one tunnel with a credential and returns what reads it.
type accessPath struct {
	name string
	open func(t *testing.T, d *revokeDemo, c *credential) (ended func() error)
}

func readerEnded(rd *reader) func() error {
	return func() error {
		select {
		case <-rd.done:
			return nil
		default:
			return fmt.Errorf("%s still open (%d bytes read)", rd.name, rd.n.Load())
		}
	}
}

var revokePaths = map[string]accessPath{
	"tunnel": {"WebSocket tunnel", func(t *testing.T, d *revokeDemo, c *credential) func() error {
		ws, _, err := websocket.Dial(context.Background(), wsURL(d.Demo, "/api/tunnel/"+d.Info.EchoHandle), &websocket.DialOptions{HTTPClient: c.client, HTTPHeader: c.hdr})
		must(t, err)
		t.Cleanup(func() { ws.CloseNow() })
		return readerEnded(echoTunnel(t, "WebSocket tunnel", wsconn.New(ws, wsconn.Addr("l"), wsconn.Addr("r"))))
	}},
	"stream": {"/c/ streaming response", func(t *testing.T, d *revokeDemo, c *credential) func() error {
		return readerEnded(proxyStream(t, d.Demo, "/c/ event stream", c.client, c.web()))
	}},
	"cws": {"/c/ WebSocket", func(t *testing.T, d *revokeDemo, c *credential) func() error {
		return readerEnded(proxyWebSocket(t, d.Demo, "/c/ WebSocket", c.client, c.web()))
	}},
	"rtsp": {"RTSP session", func(t *testing.T, d *revokeDemo, c *credential) func() error {
		p := rtspPull(t, c.rtspURL(t), gortsplib.ProtocolTCP, gortsplib.TunnelNone)
		p.wait(t, 5, 10*time.Second)
		return func() error {
			if _, stopped := p.err.Load().(error); !stopped {
				return fmt.Errorf("RTSP session still playing (%d packets)", p.count.Load())
			}
			return nil
		}
	}},
	"cli":    {"CLI mux stream", cliStreamPath("ws")},
	"cliraw": {"CLI mux stream, raw transport", cliStreamPath("raw")},
}

// cliStreamPath opens a stream of a CLI mux connection on transport.
func cliStreamPath(transport string) func(t *testing.T, d *revokeDemo, c *credential) func() error {
	return func(t *testing.T, d *revokeDemo, c *credential) func() error {
		m := dialMuxOn(t, d.Demo, c.cliToken, transport)
		st, err := m.open("127.0.0.2", uint16(d.Echo.Addr().Port))
		must(t, err)
		t.Cleanup(func() { st.Close() })
		ms := mux.NewStream(st)
		rd := startReader("CLI mux stream", ms)
		_, err = ms.Write([]byte("hello"))
		must(t, err)
		rd.waitBytes(t, 5)
		return readerEnded(rd)
	}
}

// The access paths each credential opens tunnels on.
var revokeMatrix = []struct {
	cred  string
	mint  func(t *testing.T, d *revokeDemo) *credential
	paths []string
}{
	{"token", tokenCredential, []string{"tunnel", "stream", "cws", "rtsp"}},
	{"session", sessionCredential, []string{"tunnel", "stream", "cws", "rtsp"}},
	{"cli", cliCredential, []string{"cli", "cliraw"}},
	{"user", userCredential, []string{"tunnel", "stream", "cws", "rtsp", "cli", "cliraw"}},
}

// Revoking a credential (an nt_ token, a browser session by signing out,
// a CLI session, a whole user) closes within a second every tunnel it
// opened, on every access path, whether the revocation was made on this
// relay (its API) or on another relay of the installation (a write to the
// shared database, heard through the change feed); each cut is audited
// with the credential, and a grant the credential minted opens nothing
// afterwards.
func TestRevocationCutsEveryAccessPath(t *testing.T) {
	d := startRevokeDemo(t)
	for _, row := range revokeMatrix {
		for _, pathName := range row.paths {
			for _, where := range []string{"here", "elsewhere"} {
				ap := revokePaths[pathName]
				t.Run(row.cred+"/"+pathName+"/"+where, func(t *testing.T) {
					c := row.mint(t, d)
					var grant string
					if pathName == "rtsp" {
						grant = c.rtspURL(t)
						c.rtspURL = func(*testing.T) string { return grant }
					}
					ended := ap.open(t, d, c)
					start := time.Now()
					if where == "here" {
						c.revokeHere(t)
					} else {
						c.revokeElsewhere(t)
					}
					if err := testwait.Until(time.Until(start.Add(revokeBound)), ended); err != nil {
						t.Fatalf("%s not closed within %v of the revocation %s: %v", ap.name, revokeBound, where, err)
					}
					t.Logf("%s closed %v after the revocation", ap.name, time.Since(start).Round(time.Millisecond))
					if where == "here" {
						waitAuditDetail(t, d.Demo, c.auditAction, c.auditTarget, c.auditDetail)
					} else {
						waitAuditDetail(t, d.Demo, "credential.cut", c.auditElsewhere, "tunnels closed: 1")
					}
					if grant != "" {
						if _, err := rtspPullErr(grant, gortsplib.ProtocolTCP, gortsplib.TunnelNone); err == nil {
							t.Fatal("a grant minted by the revoked credential still plays")
						}
					}
				})
			}
		}
	}
}

// tokenCredential is a fresh nt_ token of the demo operator.
func tokenCredential(t *testing.T, d *revokeDemo) *credential {
	id, tok := mintToken(t, d.Demo)
	return &credential{
		client: operator(d.Demo).HTTPClient(),
		hdr:    http.Header{"Authorization": {"Bearer " + tok}},
		rtspURL: func(t *testing.T) string {
			return mintRTSP(t, d.Demo, demo.Bearer(tok), d.Info.RTSPHandle, "/stream", 0)
		},
		revokeHere: func(t *testing.T) {
			must(t, d.API.Do(context.Background(), "DELETE", "/api/users/"+d.Info.UserID+"/tokens/"+id, nil, nil, demo.Admin(d.Info.AdminKey)))
		},
		revokeElsewhere: func(t *testing.T) { must(t, d.other.RevokeAPIToken(context.Background(), id, time.Now())) },
		auditAction:     "token.revoke", auditTarget: id, auditDetail: "tunnels closed: 1",
		auditElsewhere: id,
	}
}

// sessionCredential is a fresh browser session of the demo operator.
func sessionCredential(t *testing.T, d *revokeDemo) *credential {
	return browserCredential(t, d, demo.OperatorEmail, d.Info.UserPassword, d.Info.UserID)
}

func browserCredential(t *testing.T, d *revokeDemo, email, password, userID string) *credential {
	c := browser(t, d.Demo)
	signIn(t, d.Demo, c, email, password)
	u, _ := url.Parse(d.Info.RelayURL)
	var cookie string
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "nd_session" {
			cookie = ck.Value
		}
	}
	if cookie == "" {
		t.Fatal("no session cookie after sign-in")
	}
	hash := secret.Hash(cookie)
	csrf := func(t *testing.T) string {
		resp, page := get(t, c, d.Info.RelayURL+"/sites")
		m := csrfRe.FindStringSubmatch(page)
		if resp.StatusCode != 200 || m == nil {
			t.Fatalf("home page: %d", resp.StatusCode)
		}
		return m[1]
	}
	return &credential{
		client: c,
		rtspURL: func(t *testing.T) string {
			// The console's RTSP pill: a grant minted by the session.
			route, err := d.Relay.Store().ResolveHandle(context.Background(), d.Info.RTSPHandle)
			must(t, err)
			req, _ := http.NewRequest("POST", d.Info.RelayURL+"/devices/"+route.DeviceID+"/rtsp/"+strconv.Itoa(route.Port),
				strings.NewReader(url.Values{"csrf": {csrf(t)}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Accept", "application/json")
			resp, err := c.Do(req)
			must(t, err)
			defer resp.Body.Close()
			var out struct {
				URL string `json:"url"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
				t.Fatalf("console RTSP pill: %d %v", resp.StatusCode, err)
			}
			return out.URL
		},
		revokeHere: func(t *testing.T) {
			resp, err := c.PostForm(d.Info.RelayURL+"/logout", url.Values{"csrf": {csrf(t)}})
			must(t, err)
			resp.Body.Close()
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("logout: %d", resp.StatusCode)
			}
		},
		revokeElsewhere: func(t *testing.T) { must(t, d.other.DeleteSession(context.Background(), hash)) },
		auditAction:     "user.signout", auditTarget: userID, auditDetail: "tunnels closed: 1",
		auditElsewhere: "session:" + hex.EncodeToString(hash),
	}
}

// cliCredential is a fresh CLI session of the demo operator.
func cliCredential(t *testing.T, d *revokeDemo) *credential {
	cs := mintCLI(t, d.Demo)
	return &credential{
		cliToken: cs.Token,
		revokeHere: func(t *testing.T) {
			must(t, d.API.Do(context.Background(), "DELETE", "/api/cli/sessions/"+cs.ID, nil, nil, demo.Admin(d.Info.AdminKey)))
		},
		revokeElsewhere: func(t *testing.T) { must(t, d.other.RevokeCLISession(context.Background(), cs.ID, time.Now())) },
		auditAction:     "cli_session.revoke", auditTarget: cs.ID, auditDetail: "connections closed: 1",
		auditElsewhere: cs.ID,
	}
}

// userCredential is a fresh user of the demo tenant with every kind of
// credential: the tunnel uses their token, /c/ their password (Basic),
// RTSP a grant minted with their password, the CLI
// their CLI session. Disabling the user cuts them all.
func userCredential(t *testing.T, d *revokeDemo) *credential {
	ctx := context.Background()
	admin := demo.Admin(d.Info.AdminKey)
	email := "user-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "@demo.invalid"
	const password = "a-long-enough-password"
	var u struct {
		ID string `json:"id"`
	}
	must(t, d.API.Do(ctx, "POST", "/api/tenants/"+d.Info.TenantID+"/users", map[string]any{"email": email, "password": password}, &u, admin))
	var tok struct {
		Token string `json:"token"`
	}
	must(t, d.API.Do(ctx, "POST", "/api/users/"+u.ID+"/tokens", nil, &tok, admin))
	var cs cliSession
	must(t, d.API.Do(ctx, "POST", "/api/cli/sessions", map[string]any{"site_ids": []string{d.Info.SiteID}, "label": "user's laptop"}, &cs, demo.Bearer(tok.Token)))
	basic := func(r *http.Request) { r.SetBasicAuth(email, password) }
	c := &credential{
		client:   operator(d.Demo).HTTPClient(),
		hdr:      http.Header{"Authorization": {"Bearer " + tok.Token}},
		webHdr:   http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(email+":"+password))}},
		rtspURL:  func(t *testing.T) string { return mintRTSP(t, d.Demo, basic, d.Info.RTSPHandle, "/stream", 0) },
		cliToken: cs.Token,
		revokeHere: func(t *testing.T) {
			must(t, d.API.Do(context.Background(), "DELETE", "/api/users/"+u.ID, nil, nil, admin))
		},
		revokeElsewhere: func(t *testing.T) { must(t, d.other.DisableUser(context.Background(), u.ID, time.Now())) },
		auditAction:     "user.disable", auditTarget: u.ID, auditDetail: "tunnels closed: 1",
		auditElsewhere: "user:" + u.ID,
	}
	return c
}

// waitAuditDetail waits for an audit row: the relay that follows a change
// writes its row after it has cut.
func waitAuditDetail(t *testing.T, d *demo.Demo, action, target, detail string) {
	t.Helper()
	err := testwait.Until(10*time.Second, func() error {
		var evs []auditEvent
		if err := d.API.Do(context.Background(), "GET", "/api/audit?action="+action, nil, &evs, demo.Admin(d.Info.AdminKey)); err != nil {
			return err
		}
		for _, e := range evs {
			if e.Target == target && strings.Contains(e.Detail, detail) {
				return nil
			}
		}
		return fmt.Errorf("no audit %s for %s with %q in %+v", action, target, detail, evs)
	})
	if err != nil {
		t.Fatal(err)
	}
}
