package fleet

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/xtaci/smux"
	"go.uber.org/goleak"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/testnet"
	"github.com/nanodems/connector/internal/testpg"
	"github.com/nanodems/connector/internal/testwait"
	"github.com/nanodems/connector/internal/wsconn"
	"github.com/nanodems/connector/mux"
	"github.com/nanodems/connector/relay/pki"
	"github.com/nanodems/connector/relay/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(cleanupAfter{m})
}

// cleanupAfter stops the test PostgreSQL and removes the built binaries
// after the tests, before goleak looks for what is left running.
type cleanupAfter struct{ m *testing.M }

func (c cleanupAfter) Run() int {
	code := c.m.Run()
	testpg.Stop()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	return code
}

// installation is what the test provisioned on the fleet.
type installation struct {
	pin, adminKey, token, userID string
	tenantID, site1, site2       string
	echo1, echo2, page2          string // handles
	loopback1, loopback2         string // site 1's and site 2's devices in CLI plans
}

// TestFleetProcesses is the fleet's end-to-end check with real processes:
// three relays on one PostgreSQL, two agents at site 1 and one at site 2.
func TestFleetProcesses(t *testing.T) {
	ctx := context.Background()
	root, dsn, in, relays := startFleet(t, "r1", "r2", "r3")
	r1, r2, r3 := relays[0], relays[1], relays[2]
	twoUp := r2.up // from here two relays run the locked jobs

	// Targets, in this process: an echo server that honours half-close,
	// and a web page that also answers an upload with its sha256.
	echo, err := demo.StartEcho("127.0.0.1:0")
	must(t, err)
	t.Cleanup(func() { echo.Close() })
	page := make([]byte, 1<<20)
	rand.Read(page)
	pageLn, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	pageSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			h := sha256.New()
			io.Copy(h, r.Body)
			io.WriteString(w, hex.EncodeToString(h.Sum(nil)))
			return
		}
		w.Write(page)
	})}
	go pageSrv.Serve(pageLn)
	t.Cleanup(func() { pageSrv.Close() })
	pagePort := pageLn.Addr().(*net.TCPAddr).Port

	provision(t, r1, &in, echo.Addr().Port, pagePort)
	// Each agent is given every relay, its "home" first, which Happy
	// Eyeballs tries first: site 1's agents on r1 and r3, site 2's on r3.
	a1 := startAgent(t, root, "agent-1a", r1, in.pin, in.adminKey, in.site1, []*relayProc{r1, r2, r3})
	a2 := startAgent(t, root, "agent-1b", r2, in.pin, in.adminKey, in.site1, []*relayProc{r3, r1, r2})
	b := startAgent(t, root, "agent-2", r3, in.pin, in.adminKey, in.site2, []*relayProc{r3, r1, r2})
	holder := map[string]string{} // agent id → relay node
	testwait.For(t, 30*time.Second, "three agents online", func() bool {
		for _, site := range []string{in.site1, in.site2} {
			for _, row := range agentsOf(t, r1, in.token, site) {
				if row.Online {
					holder[row.ID] = row.Relay
				}
			}
		}
		return holder[a1.id] != "" && holder[a2.id] != "" && holder[b.id] != ""
	})
	t.Logf("agents: 1a on %s, 1b on %s, 2 on %s", holder[a1.id], holder[a2.id], holder[b.id])
	byNode := map[string]*relayProc{"r1": r1, "r2": r2, "r3": r3}
	// other returns a relay that holds none of the given agents, or nil.
	other := func(agents ...*agentProc) *relayProc {
	next:
		for _, r := range relays {
			for _, a := range agents {
				if holder[a.id] == r.node {
					continue next
				}
			}
			return r
		}
		return nil
	}
	op := func(r *relayProc, token string) cli.Relay { return cli.Relay{URL: r.url, Token: token, Pin: in.pin} }

	t.Run("bridged access paths", func(t *testing.T) {
		x := other(b)
		before := x.bridgeStats(t)
		// WebSocket tunnel, 64 MiB each way, half-close: the echo target
		// ends its answer only after the client's CloseWrite reached it.
		c, err := cli.DialTunnel(ctx, op(x, in.token), in.echo2)
		must(t, err)
		start := time.Now()
		err = testnet.RoundTrip(c, 64<<20)
		c.Close()
		must(t, err)
		t.Logf("64 MiB each way through %s → %s (bridge) in %v", x.node, holder[b.id], time.Since(start).Round(time.Millisecond))
		// The browser proxy: the page down, an upload up, both checked.
		want := sha256.Sum256(page)
		if got := sha256.Sum256(get(t, x, in.token, "/c/"+in.page2+"/")); got != want {
			t.Fatal("the page differs through the bridge")
		}
		up := make([]byte, 8<<20)
		rand.Read(up)
		sum := sha256.Sum256(up)
		req, _ := http.NewRequest("POST", x.url+"/c/"+in.page2+"/upload", bytes.NewReader(up))
		req.Header.Set("Authorization", "Bearer "+in.token)
		resp, err := x.client.Do(req)
		must(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != hex.EncodeToString(sum[:]) {
			t.Fatalf("upload through the bridge: %d %q, want sha256 %x", resp.StatusCode, body, sum)
		}
		after := x.bridgeStats(t)
		if after.Opens < before.Opens+2 || after.Bytes < before.Bytes+2*64<<20 {
			t.Fatalf("%s bridge counters %+v → %+v: the paths did not cross the bridge", x.node, before, after)
		}
		// The CLI mux: a CLI session of site 2, a stream to the device's
		// plan address, 16 MiB each way.
		var sess struct {
			Token string `json:"token"`
		}
		must(t, x.apiClient().Do(ctx, "POST", "/api/cli/sessions", map[string]any{"site_ids": []string{in.site2}, "label": "fleet e2e"}, &sess, demo.Bearer(in.token)))
		must(t, muxRoundTrip(ctx, op(x, sess.Token), in.loopback2, uint16(echo.Addr().Port), 16<<20))
		// Site 1's handle, from a relay that holds neither of its agents.
		if y := other(a1, a2); y != nil {
			c, err := cli.DialTunnel(ctx, op(y, in.token), in.echo1)
			must(t, err)
			err = testnet.RoundTrip(c, 4<<20)
			c.Close()
			must(t, err)
		} else {
			t.Logf("site 1's agents are on two relays and the third holds agent 2: %v", holder)
		}
	})

	t.Run("token revoked on one relay cuts its tunnel on another", func(t *testing.T) {
		var tok struct {
			ID    string `json:"id"`
			Token string `json:"token"`
		}
		must(t, r1.apiClient().Do(ctx, "POST", "/api/users/"+in.userID+"/tokens", nil, &tok, demo.Admin(in.adminKey)))
		via := other(b)                               // the tunnel's relay: bridged to agent 2's
		revoker := relays[(indexOf(relays, via)+1)%3] // another relay
		c, err := cli.DialTunnel(ctx, op(via, tok.Token), in.echo2)
		must(t, err)
		defer c.Close()
		_, err = c.Write([]byte("hello"))
		must(t, err)
		buf := make([]byte, 5)
		_, err = io.ReadFull(c, buf)
		must(t, err)
		cut := make(chan time.Time, 1)
		go func() {
			io.Copy(io.Discard, c)
			cut <- time.Now()
		}()
		start := time.Now()
		must(t, revoker.apiClient().Do(ctx, "DELETE", "/api/users/"+in.userID+"/tokens/"+tok.ID, nil, nil, demo.Admin(in.adminKey)))
		select {
		case at := <-cut:
			t.Logf("token revoked on %s; its tunnel through %s cut %v later", revoker.node, via.node, at.Sub(start).Round(time.Millisecond))
		case <-time.After(time.Second):
			c.Close()
			<-cut
			t.Fatalf("token revoked on %s; its tunnel through %s still open after 1 s", revoker.node, via.node)
		}
		// And the token no longer opens anything, on any relay.
		for _, r := range relays {
			_, err := cli.DialTunnel(ctx, op(r, tok.Token), in.echo2)
			var re *cli.RelayError
			if !errors.As(err, &re) || re.Status != 401 {
				t.Fatalf("revoked token on %s: %v, want 401", r.node, err)
			}
		}
	})

	t.Run("certificates stay on their listener", func(t *testing.T) {
		ca, err := pki.LoadOrCreateCA(r1.dir, pki.InternalCAName, "unused: the CA exists")
		must(t, err)
		leaf, err := ca.PeerCert("e2e-relay", []string{"127.0.0.1"})
		must(t, err)
		roots := x509.NewCertPool()
		roots.AddCert(ca.Cert)
		agentCert, err := tls.LoadX509KeyPair(filepath.Join(b.dir, "agent.pem"), filepath.Join(b.dir, "agent-key.pem"))
		must(t, err)
		peer := func() *tls.Config {
			return &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", NextProtos: []string{"h2"}}
		}
		for _, r := range relays {
			// A relay leaf of the internal CA is taken at the peer listener.
			must(t, handshake(r.peerAddr, leaf, peer()))
			if err := handshake(r.peerAddr, agentCert, peer()); err == nil || !strings.Contains(err.Error(), "certificate") {
				t.Fatalf("%s: agent certificate at the peer listener: %v, want a certificate refusal", r.node, err)
			}
			if err := handshake(r.agentAddr, leaf, &tls.Config{InsecureSkipVerify: true}); err == nil || !strings.Contains(err.Error(), "certificate") {
				t.Fatalf("%s: relay certificate at the agent listener: %v, want a certificate refusal", r.node, err)
			}
		}
	})

	t.Run("RTSP from a relay that does not hold the camera's agent", func(t *testing.T) {
		checkRTSPBridged(t, other(b), in, in.site2)
	})

	t.Run("peer link refused and cut under a bridged tunnel", func(t *testing.T) {
		x, h := other(b), byNode[holder[b.id]]
		checkPeerLink(t, op(x, in.token), x, op(h, in.token), h, in.echo2)
	})

	t.Run("kill -9 and restart of an agent under an RTSP viewer", func(st *testing.T) {
		// The viewer plays through a relay that does not hold agent 2;
		// the gateway there holds it while agent 2 is killed, started
		// again from its state and back on a relay, and resumes it.
		viewer := startRTSPViewer(st, other(b), in, in.site2)
		killed := time.Now()
		b.kill()
		b.proc = start(t, root, "agent-2-restarted", nil, b.cmd.Path, b.cmd.Args[1:]...)
		gap := viewer.keepsPlaying(st, killed)
		testwait.For(st, 30*time.Second, "agent 2 online again", func() bool {
			row := agentsOf(st, r1, in.token, in.site2)[b.id]
			if row.Online {
				holder[b.id] = row.Relay
			}
			return row.Online
		})
		st.Logf("agent 2 killed (-9) and started again, now on %s: an RTSP viewer on %s kept its session, longest gap between video packets %v",
			holder[b.id], other(b).node, gap.Round(time.Millisecond))
	})

	t.Run("kill -9 of a relay that holds an agent", func(t *testing.T) {
		k := byNode[holder[b.id]]
		var survivor *relayProc
		for _, r := range relays {
			if r != k {
				survivor = r
				break
			}
		}
		// Write through k until it dies: every write it acknowledged must
		// be there afterwards.
		writer := startWriter(t, k, in.token, in.site1, 10)
		// An agent of k that dies with it leaves a lease nobody deletes.
		var orphan *agentProc
		for _, a := range []*agentProc{a1, a2} {
			if holder[a.id] == k.node {
				orphan = a
				break
			}
		}
		st, err := store.OpenPostgres(ctx, dsn, store.PostgresOptions{MaxConns: 1, Log: slog.New(slog.DiscardHandler)})
		must(t, err)
		defer st.Close()
		var orphaned string // a handle pinned to the orphan
		if orphan != nil {
			// Frozen first, killed after k: k dies still holding its
			// session, so nobody deletes its lease.
			must(t, orphan.cmd.Process.Signal(syscall.SIGSTOP))
			var dev struct {
				Handles map[string]string `json:"handles"`
			}
			port := echo.Addr().Port
			must(t, survivor.apiClient().Do(ctx, "POST", "/api/sites/"+in.site1+"/devices", map[string]any{"host": "127.0.0.1", "ports": []int{port}, "label": "pinned to the orphan"}, &dev, demo.Bearer(in.token)))
			orphaned = dev.Handles[strconv.Itoa(port)]
			if pinned, err := st.PinHandle(ctx, orphaned, orphan.id); err != nil || pinned != orphan.id {
				t.Fatalf("pin %s to the orphan: %q, %v", orphaned, pinned, err)
			}
		}
		// An RTSP viewer on the survivor of agent 2's camera, bridged to
		// k: the gateway holds it while agent 2 moves and resumes it.
		viewer := startRTSPViewer(t, survivor, in, in.site2)
		killed := time.Now()
		k.kill()
		if orphan != nil {
			orphan.kill()
		}
		<-writer.done
		k.client.CloseIdleConnections()

		// A new tunnel to agent 2's handle through a survivor.
		tunnelAt := newTunnel(t, op(survivor, in.token), in.echo2, killed.Add(15*time.Second))
		// The agents list names the relay that holds agent 2 now.
		var listedAt time.Time
		testwait.For(t, 15*time.Second, "agents list names agent 2's new relay", func() bool {
			row := agentsOf(t, survivor, in.token, in.site2)[b.id]
			if row.Online && row.Relay != k.node && row.Relay != "" {
				listedAt = time.Now()
				return true
			}
			return false
		})
		t.Logf("%s killed (-9): a new tunnel through %s worked after %v; the agents list named agent 2's new relay after %v",
			k.node, survivor.node, tunnelAt.Sub(killed).Round(time.Millisecond), listedAt.Sub(killed).Round(time.Millisecond))
		gap := viewer.keepsPlaying(t, killed)
		t.Logf("an RTSP viewer on %s of agent 2's camera kept its session across the kill: longest gap between video packets %v",
			survivor.node, gap.Round(time.Millisecond))

		if orphan != nil {
			// A handle pinned to the agent that died with k is served by
			// the site's other agent, though k's lease still names it.
			at := newTunnel(t, op(survivor, in.token), orphaned, killed.Add(15*time.Second))
			t.Logf("a handle pinned to the agent that died with %s: served by the site's other agent %v after the kill", k.node, at.Sub(killed).Round(time.Millisecond))
			// Readers take k's lease of the dead agent for live until its
			// expiry and ignore it from then on.
			l, err := st.LookupLease(ctx, orphan.id, time.Now())
			must(t, err)
			if l.RelayNode != k.node {
				t.Fatalf("lease of the dead agent %+v, want %s's", l, k.node)
			}
			if _, err := st.LookupLease(ctx, orphan.id, l.ExpiresAt); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("lease of the dead agent at its expiry: %v, want not found", err)
			}
			row := agentsOf(t, survivor, in.token, in.site1)[orphan.id]
			t.Logf("the dead agent's lease names %s until %v (%v after the kill); its agents list row meanwhile: %+v",
				k.node, l.ExpiresAt.Format(time.TimeOnly), l.ExpiresAt.Sub(killed).Round(time.Second), row)
		}

		n := writer.checkPresent(t, survivor, in.token)
		t.Logf("%d writes acknowledged by %s before the kill, all present", n, k.node)
	})

	t.Run("locked jobs run once per tick and pass on kill -9", func(t *testing.T) {
		checkLockedJobs(t, relays, twoUp)
	})
}

// writer adds devices to a site through one relay, one after the other,
// until the relay stops answering, and keeps the ids of those the relay
// acknowledged: each was committed before its answer, so each must outlive
// the relay.
type writer struct {
	via   *relayProc
	mu    sync.Mutex
	acked []string
	done  chan struct{} // closed when a write failed
}

// startWriter starts writing through via and returns once it has n
// acknowledged writes.
func startWriter(t *testing.T, via *relayProc, token, siteID string, n int) *writer {
	t.Helper()
	w := &writer{via: via, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		api := via.apiClient()
		for i := 0; ; i++ {
			var dev struct {
				ID string `json:"id"`
			}
			body := map[string]any{"host": "127.0.0.1", "ports": []int{20000 + i%1000}, "label": "written " + strconv.Itoa(i)}
			if err := api.Do(context.Background(), "POST", "/api/sites/"+siteID+"/devices", body, &dev, demo.Bearer(token)); err != nil {
				return
			}
			w.mu.Lock()
			w.acked = append(w.acked, dev.ID)
			w.mu.Unlock()
		}
	}()
	testwait.For(t, 30*time.Second, "writes acknowledged by "+via.node, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.acked) >= n
	})
	return w
}

// checkPresent waits for the writer to have stopped (its relay died), then
// reads every device it acknowledged through r, and returns how many.
func (w *writer) checkPresent(t *testing.T, r *relayProc, token string) int {
	t.Helper()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range w.acked {
		if err := r.apiClient().Do(context.Background(), "GET", "/api/devices/"+id, nil, nil, demo.Bearer(token)); err != nil {
			t.Fatalf("device %s, acknowledged by %s before it was killed: %v", id, w.via.node, err)
		}
	}
	return len(w.acked)
}

// muxRoundTrip opens the CLI mux (/api/cli/mux) of a CLI session on the
// relay, one stream to ip:port through it, and checks n bytes each way
// with half-close.
func muxRoundTrip(ctx context.Context, r cli.Relay, ip string, port uint16, n int64) error {
	client := r.HTTPClient()
	defer client.CloseIdleConnections()
	u := "wss" + strings.TrimPrefix(r.URL, "https") + "/api/cli/mux"
	ws, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: client, HTTPHeader: http.Header{"Authorization": {"Bearer " + r.Token}}})
	if err != nil {
		return fmt.Errorf("CLI mux: %w", err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20) // smux frames are up to 64 KiB
	sess, err := smux.Client(wsconn.New(ws, wsconn.Addr("cli"), wsconn.Addr("relay")), mux.Config())
	if err != nil {
		return err
	}
	defer sess.Close()
	st, err := mux.OpenTunnel(sess, mux.Header{Host: ip, Port: port})
	if err != nil {
		return fmt.Errorf("CLI mux stream to %s:%d: %w", ip, port, err)
	}
	if err := mux.ReadStatus(st); err != nil {
		return fmt.Errorf("CLI mux stream to %s:%d: %w", ip, port, err)
	}
	return testnet.RoundTrip(mux.NewStream(st), n)
}

// newTunnel opens tunnels to handle until one carries 64 KiB each way,
// and returns when; it fails the test at deadline.
func newTunnel(t *testing.T, r cli.Relay, handle string, deadline time.Time) time.Time {
	t.Helper()
	for {
		c, err := cli.DialTunnel(context.Background(), r, handle)
		if err == nil {
			err = testnet.RoundTrip(c, 64<<10)
			c.Close()
			if err == nil {
				return time.Now()
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no tunnel to %s through %s by the deadline: %v", handle, r.URL, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func indexOf(rs []*relayProc, r *relayProc) int {
	for i, x := range rs {
		if x == r {
			return i
		}
	}
	return -1
}

// provision creates the tenant, its user and token, two sites that allow
// loopback targets, and a device at each: the echo port at both, the page
// at site 2.
func provision(t *testing.T, r *relayProc, in *installation, echoPort, pagePort int) {
	t.Helper()
	ctx := context.Background()
	api, admin := r.apiClient(), demo.Admin(in.adminKey)
	var tn, u, tok, s1, s2 struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	must(t, api.Do(ctx, "POST", "/api/admin/tenants", map[string]string{"name": "Fleet tenant"}, &tn, admin))
	must(t, api.Do(ctx, "POST", "/api/tenants/"+tn.ID+"/users", map[string]string{"email": "op@fleet.example", "password": "fleet-" + rand.Text()[:16]}, &u, admin))
	must(t, api.Do(ctx, "POST", "/api/users/"+u.ID+"/tokens", nil, &tok, admin))
	must(t, api.Do(ctx, "POST", "/api/tenants/"+tn.ID+"/sites", map[string]any{"name": "Site 1", "allow_loopback": true}, &s1, admin))
	must(t, api.Do(ctx, "POST", "/api/tenants/"+tn.ID+"/sites", map[string]any{"name": "Site 2", "allow_loopback": true}, &s2, admin))
	in.tenantID, in.userID, in.token, in.site1, in.site2 = tn.ID, u.ID, tok.Token, s1.ID, s2.ID
	var d1, d2 struct {
		Handles    map[string]string `json:"handles"`
		LoopbackIP string            `json:"loopback_ip"`
	}
	must(t, api.Do(ctx, "POST", "/api/sites/"+in.site1+"/devices", map[string]any{"host": "127.0.0.1", "ports": []int{echoPort}, "label": "echo 1"}, &d1, demo.Bearer(in.token)))
	must(t, api.Do(ctx, "POST", "/api/sites/"+in.site2+"/devices", map[string]any{"host": "127.0.0.1", "ports": []int{echoPort, pagePort}, "label": "echo and page 2"}, &d2, demo.Bearer(in.token)))
	in.echo1 = d1.Handles[strconv.Itoa(echoPort)]
	in.echo2, in.page2 = d2.Handles[strconv.Itoa(echoPort)], d2.Handles[strconv.Itoa(pagePort)]
	in.loopback1, in.loopback2 = d1.LoopbackIP, d2.LoopbackIP
}

type agentRow struct {
	ID     string `json:"id"`
	Online bool   `json:"online"`
	Relay  string `json:"relay"`
	// ConnectedAt is set only by the relay that holds the agent's
	// session; other relays name it from its lease.
	ConnectedAt time.Time `json:"connected_at"`
}

func agentsOf(t *testing.T, r *relayProc, token, siteID string) map[string]agentRow {
	t.Helper()
	out, err := listAgents(r, token, siteID)
	must(t, err)
	return out
}

// listAgents is the site's agents list on r, by agent id.
func listAgents(r *relayProc, token, siteID string) (map[string]agentRow, error) {
	var rows []agentRow
	if err := r.apiClient().Do(context.Background(), "GET", "/api/sites/"+siteID+"/agents", nil, &rows, demo.Bearer(token)); err != nil {
		return nil, fmt.Errorf("agents of site %s on %s: %w", siteID, r.node, err)
	}
	out := map[string]agentRow{}
	for _, row := range rows {
		out[row.ID] = row
	}
	return out, nil
}

func get(t *testing.T, r *relayProc, token, path string) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", r.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := r.client.Do(req)
	must(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	must(t, err)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s via %s: %d %s", path, r.node, resp.StatusCode, body)
	}
	return body
}

// handshake dials addr presenting cert and reads: the server's first bytes
// when it took the certificate, its alert when it did not (TLS 1.3 checks
// the client's certificate after the client's handshake ends). The
// certificate is sent whatever CAs the server names as acceptable, as an
// impostor would.
func handshake(addr string, cert tls.Certificate, cfg *tls.Config) error {
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	cfg.MinVersion = tls.VersionTLS13
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	_, err = c.Read(b[:])
	return err
}
