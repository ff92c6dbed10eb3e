package relay_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
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
	n, err := dedicatedCount(d)
	must(t, err)
	return n
}

// dedicatedCount is the site's one agent's count of dedicated
// connections, from the API.
func dedicatedCount(d *demo.Demo) (int64, error) {
	var agents []struct {
		Dedicated int64 `json:"dedicated_total"`
	}
	if err := d.API.Do(context.Background(), "GET", "/api/sites/"+d.Info.SiteID+"/agents", nil, &agents, demo.Admin(d.Info.AdminKey)); err != nil {
		return 0, err
	}
	if len(agents) != 1 {
		return 0, fmt.Errorf("%d agents", len(agents))
	}
	return agents[0].Dedicated, nil
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
	// The transfer goes on until the tunnel has moved and 64 MiB more
	// have gone through the dedicated connection: a fixed size can end
	// before the agent's first rate sweep on a fast machine.
	var asked time.Time
	moved := func() bool {
		if time.Since(asked) < 20*time.Millisecond {
			return false
		}
		asked = time.Now()
		n, err := dedicatedCount(d)
		return err == nil && n > 0
	}
	c.SetDeadline(time.Now().Add(60 * time.Second))
	if n, err := echoAll(c, &untilThen{cond: moved, then: 64 << 20, max: 4 << 30}); err != nil {
		t.Fatalf("transfer of %d bytes: %v", n, err)
	}
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
	// A bound well above the transfer's time (under 1 s here) and below
	// the 30 s a reader waits for a moved peer's connection.
	c.SetDeadline(time.Now().Add(20 * time.Second))
	st.failing.Store(true)
	start := time.Now()
	// The transfer lasts until the relay has refused a dedicated
	// connection and 64 MiB more have gone through: a fixed size can end
	// before the agent's first rate sweep on a fast machine.
	src := &untilThen{cond: func() bool { return st.failed.Load() > 0 }, then: 64 << 20, max: 4 << 30}
	n, err := echoAll(c, src)
	st.failing.Store(false)
	if err != nil {
		t.Fatalf("transfer after a refused move (%v, %d bytes): %v", time.Since(start).Round(time.Millisecond), n, err)
	}
	if st.failed.Load() == 0 {
		t.Fatalf("the agent never asked for a dedicated connection in %d bytes: the test tests nothing", n)
	}
	if n := dedicatedTotal(t, d); n != 0 {
		t.Fatalf("dedicated connections: %d, want 0 (every one refused)", n)
	}
	t.Logf("%d MiB echoed in %v on the shared session; %d dedicated connections refused", n>>20, time.Since(start).Round(time.Millisecond), st.failed.Load())
}

// untilThen yields random bytes until cond holds and then more bytes
// after that, or max in all.
type untilThen struct {
	cond      func() bool
	then, max int64
	n, left   int64 // read so far; still to read once cond held
	started   bool
}

func (u *untilThen) Read(p []byte) (int, error) {
	if !u.started && u.cond() {
		u.started, u.left = true, u.then
	}
	limit := u.max - u.n
	if u.started {
		limit = min(limit, u.left)
	}
	if limit <= 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), limit)]
	n, err := rand.Read(p)
	u.n += int64(n)
	if u.started {
		u.left -= int64(n)
	}
	return n, err
}

// echoAll writes what src yields to c, half-closes it, and checks that
// the same bytes come back; it returns how many bytes went each way.
func echoAll(c net.Conn, src io.Reader) (int64, error) {
	sent := sha256.New()
	errc := make(chan error, 1)
	var n int64
	go func() {
		var err error
		n, err = io.Copy(c, io.TeeReader(src, sent))
		if err == nil {
			err = c.(interface{ CloseWrite() error }).CloseWrite()
		}
		errc <- err
	}()
	got := sha256.New()
	m, err := io.Copy(got, c)
	if werr := <-errc; werr != nil {
		return n, fmt.Errorf("write: %w", werr)
	}
	if err != nil {
		return n, fmt.Errorf("read after %d bytes: %w", m, err)
	}
	if m != n || !bytes.Equal(sent.Sum(nil), got.Sum(nil)) {
		return n, fmt.Errorf("echoed %d bytes of %d, or different bytes", m, n)
	}
	return n, nil
}
