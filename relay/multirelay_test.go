package relay_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/testpg"
	"github.com/nanodems/connector/relay"
	"github.com/nanodems/connector/relay/store"
)

// withTestPG stops the test PostgreSQL (internal/testpg) after the tests
// and before goleak looks for what is left running.
type withTestPG struct{ m *testing.M }

func (w withTestPG) Run() int {
	code := w.m.Run()
	testpg.Stop()
	return code
}

// pgDemo is the demo installation with its relay ("A") on a fresh
// PostgreSQL database, and the relay's data directory.
type pgDemo struct {
	*demo.Demo
	dsn      string
	relayDir string
}

func startPGDemo(t *testing.T) *pgDemo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn := testpg.DSN(t)
	st, err := store.OpenPostgres(ctx, dsn, store.PostgresOptions{Log: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	d, err := demo.Start(ctx, demo.Options{DataDir: dir, Logger: quietLogger(), Relay: func(c *relay.Config) {
		c.Store = st // the relay closes it
		c.NodeName = "relay-a"
	}})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return &pgDemo{Demo: d, dsn: dsn, relayDir: filepath.Join(dir, "relay")}
}

// startPGPeer starts relay "B" on the demo's database, with a copy of the
// demo relay's keys (agent CA, API certificate, device key), as every
// relay of one installation has them. It returns B and an API client of
// it.
func startPGPeer(t *testing.T, d *pgDemo) (*relay.Server, *demo.API) {
	t.Helper()
	dir := t.TempDir()
	ents, err := os.ReadDir(d.relayDir)
	must(t, err)
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d.relayDir, e.Name()))
		must(t, err)
		must(t, os.WriteFile(filepath.Join(dir, e.Name()), b, 0o600))
	}
	st, err := store.OpenPostgres(context.Background(), d.dsn, store.PostgresOptions{Log: quietLogger()})
	must(t, err)
	b, err := relay.New(relay.Config{DataDir: dir, Store: st, APIAddr: "127.0.0.1:0", AgentAddr: "127.0.0.1:0",
		RTSPAddr: "off", NodeName: "relay-b", Logger: quietLogger()})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		b.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	api := demo.NewAPI(b.APIURL(), b.APIPin())
	t.Cleanup(api.Client.CloseIdleConnections)
	return b, api
}

// The relay runs on PostgreSQL as on SQLite: the demo provisions and
// enrolls through it, a tunnel carries bytes both ways, and revoking the
// agent kicks it and ends its tunnel.
func TestRelayOnPostgres(t *testing.T) {
	d := startPGDemo(t)
	ctx := context.Background()
	c, err := cli.DialTunnel(ctx, operator(d.Demo), d.Info.EchoHandle)
	must(t, err)
	defer c.Close()
	must(t, roundTrip(c, 1<<20))

	h := addDevice(t, d.Demo, d.Echo.Addr().Port)
	c2, err := cli.DialTunnel(ctx, operator(d.Demo), h)
	must(t, err)
	defer c2.Close()
	must(t, roundTrip(c2, 4096))

	c3, err := cli.DialTunnel(ctx, operator(d.Demo), d.Info.EchoHandle)
	must(t, err)
	defer c3.Close()
	rd := echoTunnel(t, "tunnel of the agent revoked", c3)
	start := time.Now()
	must(t, d.API.Do(ctx, "POST", "/api/agents/"+d.Info.AgentID+"/revoke", nil, nil, demo.Admin(d.Info.AdminKey)))
	select {
	case <-d.AgentExited():
	case <-time.After(cutBound):
		t.Fatal("agent still running after its revocation")
	}
	rd.wantCut(t, start)
	wantAudit(t, d.Demo, "agent.revoke", d.Info.AgentID)
}

// Relays on one database act on each other's changes. An API token and a
// CLI session revoked by another relay process (writes straight to the
// database, through a store of their own) end what they opened on A,
// and A refuses the token at once, its cached lookup dropped. Then, with
// a second relay B running: an allowlist change made on B reaches the
// agent held by A; a device deleted on B cuts A's tunnel to it; an agent
// revoked on B is kicked by A, which holds it.
func TestRelaysShareChanges(t *testing.T) {
	d := startPGDemo(t)
	ctx := context.Background()
	admin := demo.Admin(d.Info.AdminKey)
	other, err := store.OpenPostgres(ctx, d.dsn, store.PostgresOptions{Log: quietLogger()})
	must(t, err)
	defer other.Close()

	// Before B starts: the index of credential uses (credConns) is shared
	// by every relay Server of a process, so with B running, B's cut
	// would end A's tunnels too and prove nothing about A.
	id, tok := mintToken(t, d.Demo)
	r := cli.Relay{URL: d.Info.RelayURL, Token: tok, Pin: d.Info.CAPin}
	c, err := cli.DialTunnel(ctx, r, d.Info.EchoHandle)
	must(t, err)
	defer c.Close()
	rd := echoTunnel(t, "tunnel on A with a token revoked elsewhere", c)
	start := time.Now()
	must(t, other.RevokeAPIToken(ctx, id, time.Now()))
	rd.wantCut(t, start)
	// A drops its cached lookup of the token before it cuts.
	wantRelayError(t, dialErr(ctx, r, d.Info.EchoHandle), 401, "invalid or revoked credential")

	cs := mintCLI(t, d.Demo)
	m := dialMux(t, d.Demo, cs.Token)
	st, err := m.open("127.0.0.2", uint16(d.Echo.Addr().Port))
	must(t, err)
	defer st.Close()
	start = time.Now()
	must(t, other.RevokeCLISession(ctx, cs.ID, time.Now()))
	select {
	case <-m.dead:
		t.Logf("CLI mux on A closed %v after its session was revoked elsewhere", time.Since(start).Round(time.Millisecond))
	case <-time.After(cutBound):
		t.Fatal("CLI mux on A still open after its session was revoked elsewhere")
	}

	_, apiB := startPGPeer(t, d)
	var site struct {
		AllowlistVersion int64 `json:"allowlist_version"`
	}
	must(t, apiB.Do(ctx, "GET", "/api/sites/"+d.Info.SiteID, nil, &site, admin))

	// An allowlist change on B reaches A's agent.
	var dev struct {
		ID      string            `json:"id"`
		Handles map[string]string `json:"handles"`
	}
	port := d.Echo.Addr().Port
	start = time.Now()
	must(t, apiB.Do(ctx, "POST", "/api/sites/"+d.Info.SiteID+"/devices",
		map[string]any{"host": "127.0.0.1", "ports": []int{port}, "label": "added on B"}, &dev, admin))
	waitAllowlist(t, d.Demo, site.AllowlistVersion+1)
	t.Logf("allowlist v%d on A's agent %v after the change on B", site.AllowlistVersion+1, time.Since(start).Round(time.Millisecond))
	h := dev.Handles[fmt.Sprint(port)]

	// A device deleted on B cuts A's tunnel to it.
	c, err = cli.DialTunnel(ctx, operator(d.Demo), h)
	must(t, err)
	defer c.Close()
	rd = echoTunnel(t, "tunnel on A to a device deleted on B", c)
	start = time.Now()
	must(t, apiB.Do(ctx, "DELETE", "/api/devices/"+dev.ID, nil, nil, admin))
	rd.wantCut(t, start)
	wantRelayError(t, dialErr(ctx, operator(d.Demo), h), 404, "unknown or revoked handle")

	// An agent revoked on B is kicked by A, which holds it.
	c, err = cli.DialTunnel(ctx, operator(d.Demo), d.Info.EchoHandle)
	must(t, err)
	defer c.Close()
	rd = echoTunnel(t, "tunnel on A through an agent revoked on B", c)
	start = time.Now()
	must(t, apiB.Do(ctx, "POST", "/api/agents/"+d.Info.AgentID+"/revoke", nil, nil, admin))
	select {
	case <-d.AgentExited():
		t.Logf("agent kicked by A %v after its revocation on B", time.Since(start).Round(time.Millisecond))
	case <-time.After(cutBound):
		t.Fatal("agent held by A still running after its revocation on B")
	}
	rd.wantCut(t, start)
}

// dialErr is the error of a tunnel dial that must fail.
func dialErr(ctx context.Context, r cli.Relay, handle string) error {
	c, err := cli.DialTunnel(ctx, r, handle)
	if err == nil {
		c.Close()
		return fmt.Errorf("dial of %s succeeded", handle)
	}
	return err
}

// A resync (what a relay does when its notification connection was lost
// and changes may have been missed) checks everything the relay holds
// against the database: a token and an agent revoked by writes that sent
// no change are cut and kicked once the resync runs.
func TestRelayResyncChecksWhatItHolds(t *testing.T) {
	d := startPGDemo(t)
	ctx := context.Background()
	id, tok := mintToken(t, d.Demo)
	r := cli.Relay{URL: d.Info.RelayURL, Token: tok, Pin: d.Info.CAPin}
	c, err := cli.DialTunnel(ctx, r, d.Info.EchoHandle)
	must(t, err)
	defer c.Close()
	rd := echoTunnel(t, "tunnel with a token revoked unannounced", c)

	// Revocations written as plain SQL: no change is sent.
	db, err := pgx.Connect(ctx, d.dsn)
	must(t, err)
	defer db.Close(ctx)
	now := time.Now().UnixMicro()
	_, err = db.Exec(ctx, `UPDATE api_tokens SET revoked_at = $1 WHERE id = $2`, now, id)
	must(t, err)
	rd.wantOpen(t)

	other, err := store.OpenPostgres(ctx, d.dsn, store.PostgresOptions{Log: quietLogger()})
	must(t, err)
	defer other.Close()
	start := time.Now()
	must(t, other.Notify(ctx, store.Change{Kind: store.ChangeResync}))
	rd.wantCut(t, start)
	if rd.err == nil || !strings.Contains(rd.err.Error(), "API token revoked") {
		t.Errorf("tunnel ended with %v, want the token's revocation", rd.err)
	}

	_, err = db.Exec(ctx, `UPDATE agents SET revoked_at = $1 WHERE id = $2`, now, d.Info.AgentID)
	must(t, err)
	must(t, other.Notify(ctx, store.Change{Kind: store.ChangeResync}))
	select {
	case <-d.AgentExited():
	case <-time.After(cutBound):
		t.Fatal("agent revoked in the database still running after the resync")
	}
}
