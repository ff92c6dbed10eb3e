package relay_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nanodems/connector/demo"
)

// BenchmarkBulkAdd2000 is one POST /api/sites/{siteId}/devices/bulk of
// 2,000 cameras (HTTP and RTSP each: 4,000 handles) into the demo's site,
// whose agent is connected: validation, one transaction, and the push of
// the site's allowlist to the agent, all inside the request. Each round
// adds 2,000 new hosts, so round k also pushes the k×2,000 before it.
// ns/op is the request's time (docs/perf-console.md, "Bulk add"; the
// goal is under 5 s).
func BenchmarkBulkAdd2000(b *testing.B) {
	d, pushes := startLANDemo(b, nil)
	ctx := context.Background()
	tok := demo.Bearer(d.Info.Token)
	path := "/api/sites/" + d.Info.SiteID + "/devices/bulk"
	round := 0
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		var rows []map[string]any
		for i := range 2000 {
			rows = append(rows, map[string]any{"host": fmt.Sprintf("10.%d.%d.%d", 20+round, i/250, 1+i%250), "ports": []int{80, 554}, "label": fmt.Sprintf("Camera %d-%04d", round, i)})
		}
		round++
		before := pushes.Load()
		b.StartTimer()
		var out bulkAnswer
		if err := d.API.Do(ctx, "POST", path, map[string]any{"devices": rows}, &out, tok); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if len(out.Devices) != 2000 {
			b.Fatalf("%d devices", len(out.Devices))
		}
		waitAllowlist(b, d, out.Version)
		if n := pushes.Load() - before; n != 1 {
			b.Fatalf("%d allowlist pushes for one bulk add", n)
		}
		b.StartTimer()
	}
}
