package relay_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanodems/connector/agent"
	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/relay"
	"github.com/nanodems/connector/relay/store"
)

func dedicatedTotal(t *testing.T, d *demo.Demo) int64 {
	t.Helper()
	var agents []struct {
		Dedicated int64 `json:"dedicated_total"`
	}
	must(t, d.API.Do(context.Background(), "GET", "/api/sites/"+d.Info.SiteID+"/agents", nil, &agents, demo.Admin(d.Info.AdminKey)))
	if len(agents) != 1 {
		t.Fatalf("%d agents", len(agents))
	}
	return agents[0].Dedicated
}

// A tunnel asked for as dedicated moves to its own connection, and every
// byte arrives once, in order.
func TestDedicatedAtOpen(t *testing.T) {
	d := startDemo(t)
	c, err := cli.DialDedicated(context.Background(), operator(d), d.Info.EchoHandle)
	must(t, err)
	defer c.Close()
	must(t, roundTrip(c, 64<<20))
	if n := dedicatedTotal(t, d); n != 1 {
		t.Fatalf("dedicated connections: %d, want 1", n)
	}
}

// A tunnel that passes the byte-rate threshold moves while it runs.
func TestDedicatedByRate(t *testing.T) {
	d, err := demo.Start(context.Background(), demo.Options{
		DataDir: t.TempDir(), Logger: quietLogger(),
		Agent: func(c *agent.Config) { c.DedicatedRate = 1 << 20 },
	})
	must(t, err)
	defer d.Close()
	small, err := cli.DialTunnel(context.Background(), operator(d), d.Info.EchoHandle)
	must(t, err)
	must(t, roundTrip(small, 1000)) // a light tunnel stays shared
	small.Close()
	c, err := cli.DialTunnel(context.Background(), operator(d), d.Info.EchoHandle)
	must(t, err)
	defer c.Close()
	start := time.Now()
	must(t, roundTrip(c, 128<<20))
	if n := dedicatedTotal(t, d); n != 1 {
		t.Fatalf("dedicated connections after a %v bulk transfer: %d, want 1", time.Since(start).Round(time.Millisecond), n)
	}
}

// agentReadFails is the relay's SQLite store with a transient failure
// injected into its agent reads while failing is set, as a busy or
// failing disk gives: the relay must refuse what it cannot check.
type agentReadFails struct {
	store.Store
	failing atomic.Bool
	failed  atomic.Int64
}

func (s *agentReadFails) GetAgent(ctx context.Context, id string) (store.Agent, error) {
	if s.failing.Load() {
		s.failed.Add(1)
		return store.Agent{}, errors.New("injected: database is locked")
	}
	return s.Store.GetAgent(ctx, id)
}

// A tunnel whose dedicated connection the relay refuses (here its
// identity check cannot read the store) keeps running on the shared
// session: the agent moves it only once the relay has accepted the
// connection. Before, the agent moved at once, its writes went to the
// closed connection, and the operator's transfer was cut.
func TestDedicatedRefusedKeepsTunnel(t *testing.T) {
	st := &agentReadFails{}
	d, err := demo.Start(context.Background(), demo.Options{
		DataDir: t.TempDir(), Logger: quietLogger(),
		Relay: func(c *relay.Config) {
			must(t, os.MkdirAll(c.DataDir, 0o700))
			db, err := store.OpenSQLite(filepath.Join(c.DataDir, "relay.db"))
			must(t, err)
			st.Store = db
			c.Store = st
		},
		Agent: func(c *agent.Config) { c.DedicatedRate = 1 << 20 },
	})
	must(t, err)
	defer d.Close()
	c, err := cli.DialTunnel(context.Background(), operator(d), d.Info.EchoHandle)
	must(t, err)
	defer c.Close()
	// A bound well above the transfer's time (about 1 s here) and below
	// the 30 s a reader waits for a moved peer's connection.
	c.SetDeadline(time.Now().Add(20 * time.Second))
	st.failing.Store(true)
	start := time.Now()
	err = roundTrip(c, 64<<20)
	st.failing.Store(false)
	if err != nil {
		t.Fatalf("transfer after a refused move (%v): %v", time.Since(start).Round(time.Millisecond), err)
	}
	if st.failed.Load() == 0 {
		t.Fatal("the agent never asked for a dedicated connection: the test tests nothing")
	}
	if n := dedicatedTotal(t, d); n != 0 {
		t.Fatalf("dedicated connections: %d, want 0 (every one refused)", n)
	}
	t.Logf("64 MiB echoed in %v on the shared session; %d dedicated connections refused", time.Since(start).Round(time.Millisecond), st.failed.Load())
}
