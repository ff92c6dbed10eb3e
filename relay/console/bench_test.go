package console_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
)

// The console's pages at an integrator's scale: a tenant with 200 sites,
// 2,000 agents and 20,000 devices. Each benchmark renders one page over
// the relay's HTTPS listener (a signed-in keep-alive client on loopback,
// as a browser fetches it) and reports the p50 and p99 of its renders.
// Goal (docs/perf-console.md): p99 under 50 ms.
//
//	go test -run '^$' -bench BenchmarkConsolePages -benchtime 200x ./relay/console/
func BenchmarkConsolePages(b *testing.B) {
	dataDir := b.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d, err := demo.Start(ctx, demo.Options{DataDir: dataDir, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	start := time.Now()
	seedScale(b, filepath.Join(dataDir, "relay", "relay.db"), d.Info.TenantID, 200, 2000, 20000)
	b.Logf("seeded 200 sites, 2,000 agents, 20,000 devices in %v", time.Since(start).Round(time.Millisecond))
	c := benchSignIn(b, d)

	for _, page := range []struct{ name, path, want string }{
		{"sites", "/sites", `data-count="sites">200<`},
		{"agents", "/agents", `data-count="agents">100<`}, // the first page of twenty
	} {
		b.Run(page.name, func(b *testing.B) {
			if body := c.get(b, page.path); !strings.Contains(body, page.want) {
				b.Fatalf("%s does not show %s", page.path, page.want)
			}
			times := make([]time.Duration, 0, b.N)
			cpu0 := cpuTime(b)
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				c.get(b, page.path)
				times = append(times, time.Since(t0))
			}
			b.StopTimer()
			// CPU time per render (relay and client, this process): what a
			// render costs whatever else the machine runs.
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
			slices.Sort(times)
			q := func(p float64) float64 {
				return float64(times[min(len(times)-1, int(p*float64(len(times))))]) / float64(time.Millisecond)
			}
			b.ReportMetric(q(0.50), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
		})
	}
}

// seedScale adds sites, agents and devices to the tenant straight into
// the relay's database, in one transaction: through the API, 20,000
// devices would be 20,000 transactions and allowlist pushes.
func seedScale(b *testing.B, path, tenantID string, sites, agents, devices int) {
	b.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	now := time.Now().UnixMicro()
	exec := func(q string, args ...any) {
		if _, err := tx.Exec(q, args...); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	var have int
	if err := tx.QueryRow(`SELECT COUNT(*) FROM sites WHERE tenant_id = ?`, tenantID).Scan(&have); err != nil {
		b.Fatal(err)
	}
	ids := make([]string, 0, sites)
	for i := have; i < sites; i++ {
		id := fmt.Sprintf("site_bench%04d", i)
		ids = append(ids, id)
		exec(`INSERT INTO sites (id, tenant_id, name, allowlist_version, allow_loopback, created_at) VALUES (?, ?, ?, 1, 0, ?)`,
			id, tenantID, fmt.Sprintf("Site %04d", i), now+int64(i))
	}
	for i := range agents - 1 { // the demo's agent is one
		exec(`INSERT INTO agents (id, site_id, cert_serial, created_at) VALUES (?, ?, ?, ?)`,
			fmt.Sprintf("agt_bench%05d", i), ids[i%len(ids)], fmt.Sprintf("%x", 1<<20+i), now+int64(i))
	}
	for i := range devices - 2 { // the demo's devices
		exec(`INSERT INTO devices (id, site_id, host, ports, label, manufacturer, model, notes, loopback, created_at)
			VALUES (?, ?, ?, '[80,554]', ?, 'Hikvision', 'DS-2CD2143', '', ?, ?)`,
			fmt.Sprintf("dev_bench%05d", i), ids[i%len(ids)], fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255),
			fmt.Sprintf("Camera %05d", i), 1<<20+i, now+int64(i))
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}

// benchClient is a signed-in browser session for a benchmark.
type benchClient struct {
	base string
	c    *http.Client
}

func benchSignIn(b *testing.B, d *demo.Demo) *benchClient {
	b.Helper()
	jar, _ := cookiejar.New(nil)
	hc := cli.Relay{URL: d.Info.RelayURL, Pin: d.Info.CAPin}.HTTPClient()
	hc.Jar = jar
	c := &benchClient{base: d.Info.RelayURL, c: hc}
	m := csrfRE.FindStringSubmatch(c.get(b, "/login"))
	if m == nil {
		b.Fatal("no csrf on the sign-in page")
	}
	resp, err := hc.PostForm(c.base+"/login", url.Values{"csrf": {m[1]}, "email": {d.Info.UserEmail}, "password": {d.Info.UserPassword}})
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return c
}

func (c *benchClient) get(b *testing.B, path string) string {
	resp, err := c.c.Get(c.base + path)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
	}
	return string(body)
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
