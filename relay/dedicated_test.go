package relay_test

import (
	"context"
	"testing"
	"time"

	"github.com/nanodems/connector/agent"
	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
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
