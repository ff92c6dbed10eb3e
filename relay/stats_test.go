package relay_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/testwait"
)

type statsAnswer struct {
	Range  string `json:"range"`
	Step   string `json:"step"`
	Points []struct {
		Start    time.Time `json:"start"`
		BytesIn  int64     `json:"bytes_in"`
		BytesOut int64     `json:"bytes_out"`
	} `json:"points"`
	Total struct {
		BytesIn  int64 `json:"bytes_in"`
		BytesOut int64 `json:"bytes_out"`
		OpenedOK int64 `json:"opened_ok"`
		Refused  int64 `json:"refused"`
	} `json:"total"`
	Today struct {
		BytesIn  int64 `json:"bytes_in"`
		BytesOut int64 `json:"bytes_out"`
	} `json:"today"`
}

// TestStatsFromHeartbeats follows a known transfer and a known refused
// tunnel from the agent's per-port counters, through its heartbeat, the
// samples the relay writes when the session ends (here: the relay
// restarts) and the hourly rollup the restarted relay runs, to the stats
// routes of the agent, the site and each device: the echo device shows
// exactly the bytes moved and one tunnel opened, the closed port one
// refusal and no bytes; an unknown range is a 400.
func TestStatsFromHeartbeats(t *testing.T) {
	d := startDemo(t)
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	closedPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	closedHandle := addDevice(t, d, closedPort)

	const n = 200_000
	c, err := cli.DialTunnel(ctx, operator(d), d.Info.EchoHandle)
	must(t, err)
	must(t, roundTrip(c, n))
	c.Close()
	if _, err := cli.DialTunnel(ctx, operator(d), closedHandle); err == nil {
		t.Fatal("a tunnel to a closed port opened")
	}

	// The heartbeat that carries the bytes (every 5 s) has reached the
	// relay once the agents route shows them.
	must(t, testwait.Until(15*time.Second, func() error {
		var agents []struct {
			BytesIn uint64 `json:"bytes_in"`
		}
		must(t, d.API.Do(ctx, "GET", "/api/sites/"+d.Info.SiteID+"/agents", nil, &agents, demo.Bearer(d.Info.Token)))
		if len(agents) == 1 && agents[0].BytesIn >= n {
			return nil
		}
		return fmt.Errorf("no heartbeat with %d bytes yet: %+v", n, agents)
	}))
	// Counted in the kernel where the test may load BPF programs (root),
	// else in the copy loop: the same bytes either way.
	if st := d.Agent.Stats(); (st.Counting != "ebpf" && st.Counting != "userspace") || st.Counting != d.Agent.Counting() || len(st.Ports) < 2 {
		t.Fatalf("agent stats %+v", st)
	}
	must(t, d.RestartRelay())
	must(t, d.WaitAgent(ctx, 15*time.Second))

	var page struct {
		Items []struct {
			ID    string `json:"id"`
			Ports []int  `json:"ports"`
		} `json:"items"`
	}
	must(t, d.API.Do(ctx, "GET", "/api/sites/"+d.Info.SiteID+"/devices", nil, &page, demo.Bearer(d.Info.Token)))
	devices := page.Items
	deviceOf := func(port int) string {
		for _, dev := range devices {
			for _, p := range dev.Ports {
				if p == port {
					return dev.ID
				}
			}
		}
		t.Fatalf("no device with port %d in %+v", port, devices)
		return ""
	}
	get := func(path string) statsAnswer {
		var a statsAnswer
		must(t, d.API.Do(ctx, "GET", path, nil, &a, demo.Bearer(d.Info.Token)))
		return a
	}
	echo := "/api/devices/" + deviceOf(d.Echo.Addr().Port) + "/stats"
	// The restarted relay's hourly rollup runs as it starts.
	must(t, testwait.Until(10*time.Second, func() error {
		if a := get(echo); a.Total.BytesIn+a.Total.BytesOut == 0 {
			return fmt.Errorf("no rolled-up bytes yet: %+v", a.Total)
		}
		return nil
	}))
	a := get(echo)
	if a.Range != "24h" || a.Step != "hour" || len(a.Points) != 24 {
		t.Errorf("default series: range %q step %q with %d points", a.Range, a.Step, len(a.Points))
	}
	if a.Total.BytesIn != n || a.Total.BytesOut != n || a.Total.OpenedOK != 1 || a.Today.BytesIn != n {
		t.Errorf("echo device: %+v today %+v; want %d bytes each way, one tunnel", a.Total, a.Today, n)
	}
	if last := a.Points[23]; last.BytesIn != n {
		t.Errorf("the current hour's point %+v; want %d bytes in", last, n)
	}
	closed := get("/api/devices/" + deviceOf(closedPort) + "/stats")
	if closed.Total.Refused != 1 || closed.Total.BytesIn+closed.Total.BytesOut != 0 || closed.Total.OpenedOK != 0 {
		t.Errorf("closed port: %+v; want one refusal and nothing else", closed.Total)
	}
	for _, path := range []string{"/api/agents/" + d.Info.AgentID + "/stats", "/api/sites/" + d.Info.SiteID + "/stats"} {
		if s := get(path); s.Total.BytesIn != n || s.Total.Refused != 1 {
			t.Errorf("%s: %+v; want the echo bytes and the refusal", path, s.Total)
		}
	}
	if s := get("/api/sites/" + d.Info.SiteID + "/stats?range=30d"); s.Step != "day" || len(s.Points) != 30 || s.Total.BytesIn != n || s.Points[29].BytesIn != n {
		t.Errorf("30 days: step %q, %d points, %+v; want today's bytes in the last", s.Step, len(s.Points), s.Total)
	}
	err = d.API.Do(ctx, "GET", echo+"?range=7d", nil, nil, demo.Bearer(d.Info.Token))
	wantStatus(t, err, 400)
}
