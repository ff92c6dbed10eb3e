package console_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/internal/testnet"
	"github.com/nanodems/connector/internal/testwait"
)

// TestConsoleTraffic moves 1 MiB each way through the echo device, lets
// the relay write and roll up the agent's counters (a relay restart ends
// the session, which writes them; the restarted relay rolls them up),
// keeps one tunnel open, and reads the pages in Chromium: the Agents page
// shows the agent's 2.0 MiB today and a Last 24h sparkline drawn by the
// server; the site page shows 1 active stream, 2.0 MiB today, its
// sparkline, and the echo device's row 2.0 MiB.
func TestConsoleTraffic(t *testing.T) {
	d := startDemo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	relay := cli.Relay{URL: d.Info.RelayURL, Token: d.Info.Token, Pin: d.Info.CAPin}
	const n = 1 << 20
	c, err := cli.DialTunnel(ctx, relay, d.Info.EchoHandle)
	if err != nil {
		t.Fatal(err)
	}
	if err := testnet.RoundTrip(c, n); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := testwait.Until(15*time.Second, func() error {
		var agents []struct {
			BytesIn uint64 `json:"bytes_in"`
		}
		api(t, d, "GET", "/api/sites/"+d.Info.SiteID+"/agents", nil, &agents)
		if len(agents) == 1 && agents[0].BytesIn >= n {
			return nil
		}
		return fmt.Errorf("no heartbeat with the bytes yet: %+v", agents)
	}); err != nil {
		t.Fatal(err)
	}
	if err := d.RestartRelay(); err != nil {
		t.Fatal(err)
	}
	if err := d.WaitAgent(ctx, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := testwait.Until(10*time.Second, func() error {
		var s struct {
			Today struct {
				BytesIn int64 `json:"bytes_in"`
			} `json:"today"`
		}
		api(t, d, "GET", "/api/sites/"+d.Info.SiteID+"/stats", nil, &s)
		if s.Today.BytesIn == n {
			return nil
		}
		return fmt.Errorf("today %+v", s.Today)
	}); err != nil {
		t.Fatal(err)
	}
	live, err := cli.DialTunnel(ctx, relay, d.Info.EchoHandle)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	var page struct {
		Items []struct {
			ID    string `json:"id"`
			Ports []int  `json:"ports"`
		} `json:"items"`
	}
	api(t, d, "GET", "/api/sites/"+d.Info.SiteID+"/devices", nil, &page)
	echoID := ""
	for _, dev := range page.Items {
		for _, p := range dev.Ports {
			if p == d.Echo.Addr().Port {
				echoID = dev.ID
			}
		}
	}
	if echoID == "" {
		t.Fatalf("no echo device in %+v", page.Items)
	}

	b := newBrowser(t, d.Info.RelayURL)
	b.SignIn(d.Info.UserEmail, d.Info.UserPassword)
	row := `#agent-` + d.Info.AgentID
	b.Run("Agents", chromedp.Navigate(d.Info.RelayURL+"/agents"), chromedp.WaitVisible(row+` svg.spark`, chromedp.ByQuery))
	if got := b.Text(row + ` [data-f="today"]`); got != "2.0 MiB" {
		t.Errorf("agent today %q, want 2.0 MiB", got)
	}
	var points string
	b.Run("sparkline", chromedp.AttributeValue(row+` svg.spark polyline`, "points", &points, nil, chromedp.ByQuery))
	if pts := strings.Fields(points); len(pts) != 24 {
		t.Errorf("sparkline of %d points, want 24: %q", len(pts), points)
	} else if last := pts[23]; strings.HasSuffix(last, ",19.0") {
		t.Errorf("the current hour's point %q sits at the bottom, as an idle hour", last)
	}
	b.Shot("agents-traffic")

	b.Run("site", chromedp.Navigate(d.Info.RelayURL+"/sites/"+d.Info.SiteID), chromedp.WaitVisible(`#site-traffic`, chromedp.ByQuery))
	if got := b.Text(`#site-streams`); got != "1" {
		t.Errorf("site active streams %q, want 1", got)
	}
	if got := b.Text(`#site-today`); got != "2.0 MiB" {
		t.Errorf("site today %q, want 2.0 MiB", got)
	}
	b.Run("site sparkline", chromedp.WaitVisible(`#site-spark svg.spark polyline`, chromedp.ByQuery))
	if got := b.Text(`#dev-` + echoID + ` [data-f="today"]`); got != "2.0 MiB" {
		t.Errorf("echo device today %q, want 2.0 MiB", got)
	}
	b.Shot("site-traffic")
}
