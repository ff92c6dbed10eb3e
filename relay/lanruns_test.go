package relay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanodems/connector/agent"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/relay"
)

// pushCounter counts the allowlists the agent applied, from its log.
type pushCounter struct {
	slog.Handler
	n *atomic.Int64
}

func (h pushCounter) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "allowlist applied" {
		h.n.Add(1)
	}
	return h.Handler.Handle(ctx, r)
}
func (h pushCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h pushCounter) WithAttrs(as []slog.Attr) slog.Handler {
	return pushCounter{h.Handler.WithAttrs(as), h.n}
}
func (h pushCounter) WithGroup(g string) slog.Handler {
	return pushCounter{h.Handler.WithGroup(g), h.n}
}

// startLANDemo is a demo whose agent counts the allowlists it applies
// and, when onLAN is set, looks at its LAN through it.
func startLANDemo(t testing.TB, onLAN func(func() error) error) (*demo.Demo, *atomic.Int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pushes := new(atomic.Int64)
	d, err := demo.Start(ctx, demo.Options{DataDir: t.TempDir(), Logger: quietLogger(), Agent: func(c *agent.Config) {
		c.Logger = slog.New(pushCounter{slog.NewTextHandler(discard{}, &slog.HandlerOptions{Level: slog.LevelError}), pushes})
		c.OnLAN = onLAN
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d, pushes
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

type bulkAnswer struct {
	Version int64 `json:"allowlist_version"`
	Devices []struct {
		ID         string            `json:"id"`
		Host       string            `json:"host"`
		Ports      []int             `json:"ports"`
		LoopbackIP string            `json:"loopback_ip"`
		Handles    map[string]string `json:"handles"`
	} `json:"devices"`
}

// TestBulkAddDevices: rows are checked like single creates; one bad row
// refuses the request with every bad row's reason and stores nothing; a
// good request stores every device with a handle per port, in one
// allowlist version the agent gets in exactly one push.
func TestBulkAddDevices(t *testing.T) {
	d, pushes := startLANDemo(t, nil)
	ctx := context.Background()
	tok := demo.Bearer(d.Info.Token)
	path := "/api/sites/" + d.Info.SiteID + "/devices/bulk"
	var site struct {
		Version int64 `json:"allowlist_version"`
	}
	if err := d.API.Do(ctx, "GET", "/api/sites/"+d.Info.SiteID, nil, &site, tok); err != nil {
		t.Fatal(err)
	}
	waitAllowlist(t, d, site.Version)

	bad := map[string]any{"devices": []map[string]any{
		{"host": "10.1.0.1", "ports": []int{80}},
		{"host": "10.1.0.2", "ports": []int{0}},
		{"host": "10.1.0.3", "ports": []int{80, 80}},
		{"host": "10.1.0.4", "ports": []int{}},
		{"host": "10.1.0.5/24", "ports": []int{80}},
	}}
	status, body := rawDo(t, d, "POST", path, bad)
	if status != http.StatusBadRequest ||
		!strings.Contains(body, `"error": "4 of 5 rows are invalid; no device was added"`) ||
		!strings.Contains(body, `"row": 1,`) || !strings.Contains(body, "port 0 is out of range") ||
		!strings.Contains(body, `"row": 2,`) || !strings.Contains(body, "port 80 is listed twice") ||
		!strings.Contains(body, `"row": 3,`) || !strings.Contains(body, "1 to 64 ports") ||
		!strings.Contains(body, `"row": 4,`) || strings.Contains(body, `"row": 0,`) {
		t.Fatalf("bad rows: %d %s", status, body)
	}
	for _, b := range []string{`{"devices":[]}`, `{"devices":[{"host":"10.1.0.1","ports":[80],"colour":"red"}]}`, `not json`} {
		if status, body := rawDo(t, d, "POST", path, b); status != http.StatusBadRequest {
			t.Errorf("%s: %d %s", b, status, body)
		}
	}
	var list struct {
		Items []any `json:"items"`
	}
	if err := d.API.Do(ctx, "GET", "/api/sites/"+d.Info.SiteID+"/devices", nil, &list, tok); err != nil {
		t.Fatal(err)
	}
	before := len(list.Items)
	if before == 0 {
		t.Fatal("the demo site lists no device")
	}

	pushes.Store(0)
	var rows []map[string]any
	for i := range 300 {
		rows = append(rows, map[string]any{"host": fmt.Sprintf("10.2.%d.%d", i/250, 1+i%250), "ports": []int{80, 554}, "label": fmt.Sprintf("cam %d", i)})
	}
	var out bulkAnswer
	if err := d.API.Do(ctx, "POST", path, map[string]any{"devices": rows}, &out, tok); err != nil {
		t.Fatal(err)
	}
	if out.Version != site.Version+1 || len(out.Devices) != 300 {
		t.Fatalf("version %d (was %d), %d devices", out.Version, site.Version, len(out.Devices))
	}
	for _, dev := range out.Devices {
		if len(dev.Handles) != 2 || dev.Handles["80"] == "" || dev.Handles["554"] == "" || dev.LoopbackIP == "" {
			t.Fatalf("device %+v", dev)
		}
	}
	if err := d.API.Do(ctx, "GET", "/api/sites/"+d.Info.SiteID+"/devices?limit=1000", nil, &list, tok); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != before+300 {
		t.Errorf("%d devices, want %d", len(list.Items), before+300)
	}
	waitAllowlist(t, d, out.Version)
	if !d.Agent.Allowlist().Allows("10.2.1.50", 554) {
		t.Error("the agent's allowlist lacks a bulk-added device")
	}
	// One request, one push: wait for stragglers a push more would be.
	time.Sleep(300 * time.Millisecond)
	if n := pushes.Load(); n != 1 {
		t.Errorf("the agent applied %d allowlist pushes for one bulk add, want 1", n)
	}
	// A bulk-added device is reachable like any other: its handle resolves.
	var h struct {
		Handle string `json:"handle"`
	}
	if err := d.API.Do(ctx, "POST", "/api/devices/"+out.Devices[7].ID+"/ports/80/handle", nil, &h, tok); err != nil || h.Handle != out.Devices[7].Handles["80"] {
		t.Errorf("handle of a bulk-added device: %+v, %v", h, err)
	}
}

// rawDo sends body (a string as is, else as JSON) with the demo's token
// and returns the status and body.
func rawDo(t testing.TB, d *demo.Demo, method, path string, body any) (int, string) {
	t.Helper()
	b, ok := body.(string)
	if !ok {
		j, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		b = string(j)
	}
	req, err := http.NewRequest(method, d.API.Base+path, strings.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+d.Info.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.API.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(out)
}

// TestLANRunAgentTooOld: a site whose agent predates LAN runs gets a
// clear 409, and the agent is sent nothing it would not understand (its
// session stays up).
func TestLANRunAgentTooOld(t *testing.T) {
	d, _ := startLANDemo(t, nil)
	if !relay.ActAsOldAgent(d.Relay, d.Info.AgentID) {
		t.Fatal("the demo's agent is not connected")
	}
	for _, p := range []struct{ path, body string }{{"discoveries", `{}`}, {"probes", `{"range":"10.0.0.1"}`}} {
		status, body := rawDo(t, d, "POST", "/api/sites/"+d.Info.SiteID+"/"+p.path, p.body)
		if status != http.StatusConflict || !strings.Contains(body, "too old to discover or probe") || !strings.Contains(body, "v0.9.0") {
			t.Errorf("%s: %d %s", p.path, status, body)
		}
	}
	if !d.Agent.Connected() {
		t.Error("the agent's session ended")
	}
}
