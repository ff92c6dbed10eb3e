package fleet

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/testnet"
	"github.com/nanodems/connector/internal/testpg"
	"github.com/nanodems/connector/internal/testwait"
)

// TestFleetDatabaseAway stops PostgreSQL under two relay processes that
// carry tunnels, one local and one bridged to an agent of the other
// relay, and starts it again: open tunnels go on, opens whose token and
// route the relay has cached go on, what must read or write the database
// fails with an answer (not a hang), both relays turn not-ready and stay
// live; once PostgreSQL is back, everything works again without a
// restart. The figures go to docs/ha.md's failure table.
func TestFleetDatabaseAway(t *testing.T) {
	ctx := context.Background()
	root, _, in, relays := startFleet(t, "r1", "r2")
	r1, r2 := relays[0], relays[1]
	echo, err := demo.StartEcho("127.0.0.1:0")
	must(t, err)
	t.Cleanup(func() { echo.Close() })
	provision(t, r1, &in, echo.Addr().Port, 9) // no page: port 9 stands in
	a := startAgent(t, root, "agent-2", r1, in.pin, in.adminKey, in.site2, []*relayProc{r1, r2})
	testwait.For(t, 30*time.Second, "the agent online on r1", func() bool {
		return agentsOf(t, r2, in.token, in.site2)[a.id].Relay == "r1"
	})
	op := func(r *relayProc, token string) cli.Relay { return cli.Relay{URL: r.url, Token: token, Pin: in.pin} }
	// A second token, minted and never used: no relay has it cached.
	var tok2 struct {
		Token string `json:"token"`
	}
	must(t, r1.apiClient().Do(ctx, "POST", "/api/users/"+in.userID+"/tokens", nil, &tok2, demo.Admin(in.adminKey)))
	// Tunnels open before the outage; their opens cached the token and
	// the handle's route on both relays.
	local, bridged := openEcho(t, op(r1, in.token), in.echo2), openEcho(t, op(r2, in.token), in.echo2)
	defer local.Close()
	defer bridged.Close()

	testpg.Down(t)
	down := time.Now()
	// Both relays turn not-ready and stay live.
	for _, r := range []*relayProc{r1, r2} {
		testwait.For(t, 30*time.Second, r.node+" not ready", func() bool { return healthz(t, r, "ready") == 503 })
		if code := healthz(t, r, "live"); code != 200 {
			t.Fatalf("%s /healthz/live with the database away: %d", r.node, code)
		}
	}
	t.Logf("database away: both relays answered /healthz/ready 503 within %v, /healthz/live 200", time.Since(down).Round(time.Millisecond))
	// Open tunnels do not touch the database.
	for _, c := range []net.Conn{local, bridged} {
		echoes(t, c, "while the database is away")
	}
	// Opens whose token and route are cached, on the agent's relay.
	c, err := cli.DialTunnel(ctx, op(r1, in.token), in.echo2)
	must(t, err)
	echoes(t, c, "cached")
	c.Close()
	// What needs the database fails with an answer.
	start := time.Now()
	_, err = cli.DialTunnel(ctx, op(r1, tok2.Token), in.echo2)
	t.Logf("database away: a tunnel with a token no relay has cached: %v (after %v)", err, time.Since(start).Round(time.Millisecond))
	var re *cli.RelayError
	if !errors.As(err, &re) || re.Status != 503 || !strings.Contains(re.Reason, "database unavailable") {
		t.Fatalf("a tunnel with an uncached token, database away: %v, want 503 database unavailable", err)
	}
	start = time.Now()
	err = r1.apiClient().Do(ctx, "POST", "/api/sites/"+in.site2+"/devices", map[string]any{"host": "127.0.0.1", "ports": []int{1}, "label": "written while away"}, nil, demo.Bearer(in.token))
	t.Logf("database away: an API write: %v (after %v)", err, time.Since(start).Round(time.Millisecond))
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "database unavailable") {
		t.Fatalf("an API write with the database away: %v, want 503 database unavailable", err)
	}
	start = time.Now()
	// And through the other relay, bridged: its last lease of the agent
	// stands in for the one it cannot read.
	c, err = cli.DialTunnel(ctx, op(r2, in.token), in.echo2)
	if err != nil {
		t.Fatalf("database away: a new bridged tunnel (cached token and route on r2): %v", err)
	}
	echoes(t, c, "bridged while away")
	c.Close()
	t.Logf("database away: new tunnels with a cached token and route worked, on the agent's relay and bridged from the other (%v)", time.Since(start).Round(time.Millisecond))
	// Away for a while: heartbeats' lease writes and locked job ticks fail.
	time.Sleep(5 * time.Second)

	testpg.Up(t)
	up := time.Now()
	var ready, written, uncached, newBridged time.Duration
	testwait.For(t, 60*time.Second, "both relays ready again", func() bool {
		return healthz(t, r1, "ready") == 200 && healthz(t, r2, "ready") == 200
	})
	ready = time.Since(up)
	testwait.For(t, 60*time.Second, "an API write through r2", func() bool {
		return r2.apiClient().Do(ctx, "POST", "/api/sites/"+in.site2+"/devices", map[string]any{"host": "127.0.0.1", "ports": []int{2}, "label": "written after"}, nil, demo.Bearer(in.token)) == nil
	})
	written = time.Since(up)
	newTunnel(t, op(r1, tok2.Token), in.echo2, up.Add(60*time.Second))
	uncached = time.Since(up)
	newTunnel(t, op(r2, tok2.Token), in.echo2, up.Add(60*time.Second))
	newBridged = time.Since(up)
	t.Logf("database back (away %v): both relays ready %v later, an API write worked %v later, an uncached token's tunnel %v later, a new bridged tunnel %v later",
		up.Sub(down).Round(time.Millisecond), ready.Round(time.Millisecond), written.Round(time.Millisecond), uncached.Round(time.Millisecond), newBridged.Round(time.Millisecond))
	// The tunnels open since before the outage still run, and the agent
	// kept its session on r1 throughout.
	for _, c := range []net.Conn{local, bridged} {
		must(t, testnet.RoundTrip(c, 1<<20))
	}
	if row := agentsOf(t, r2, in.token, in.site2)[a.id]; !row.Online || row.Relay != "r1" {
		t.Fatalf("the agent after the outage: %+v, want online on r1", row)
	}
	if n := strings.Count(a.log(), "msg=connected "); n != 1 {
		t.Fatalf("the agent connected %d times: its session did not outlive the outage\n%s", n, a.log())
	}
	t.Logf("the tunnels open before the outage carried 1 MiB each way after it; the agent kept its one session on r1 throughout")
}

// echoes sends msg through the echo tunnel c and reads it back.
func echoes(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("echo %q: %v", msg, err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo %q: %q, %v", msg, buf, err)
	}
}

// healthz is the status of GET /healthz/{what} on r, 0 without an answer.
func healthz(t *testing.T, r *relayProc, what string) int {
	t.Helper()
	resp, err := r.client.Get(r.url + "/healthz/" + what)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
