package console

import (
	"fmt"
	"html/template"
	"net"
	"strconv"
	"strings"
)

// sparkline draws hourly byte counts, oldest first, as a small inline
// SVG: rendered by the server, so the page needs no script or chart
// library to show it. The tallest hour fills the height; an idle day is a
// flat line at the bottom. The title says the day's total for readers
// the shape does not reach.
func sparkline(vals []int64, label string) template.HTML {
	const w, h = 96, 20
	if len(vals) < 2 {
		return ""
	}
	var peak, total int64
	for _, v := range vals {
		peak = max(peak, v)
		total += v
	}
	var pts strings.Builder
	for i, v := range vals {
		x := float64(i) * w / float64(len(vals)-1)
		y := float64(h - 1)
		if peak > 0 {
			y = float64(h-1) - float64(v)*float64(h-2)/float64(peak)
		}
		fmt.Fprintf(&pts, "%.1f,%.1f ", x, y)
	}
	title := template.HTMLEscapeString(fmt.Sprintf("%s: %s in the last 24 hours", label, humanBytes(uint64(max(total, 0)))))
	return template.HTML(fmt.Sprintf(`<svg class="spark" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s"><title>%s</title><polyline fill="none" stroke="currentColor" stroke-width="1.5" points="%s"/></svg>`,
		w, h, w, h, title, title, strings.TrimSpace(pts.String())))
}

// siteTraffic is GET /api/sites/{siteId}/stats as the site page uses it.
type siteTraffic struct {
	Points []struct {
		BytesIn  int64 `json:"bytes_in"`
		BytesOut int64 `json:"bytes_out"`
	} `json:"points"`
	Today struct {
		BytesIn  int64 `json:"bytes_in"`
		BytesOut int64 `json:"bytes_out"`
	} `json:"today"`
	ByPort map[string]int64 `json:"today_bytes_by_port"`
}

// deviceToday is a device's bytes today: the sum of its ports'.
func (t siteTraffic) deviceToday(d Device) int64 {
	var n int64
	for _, p := range d.Ports {
		n += t.ByPort[net.JoinHostPort(d.Host, strconv.Itoa(p))]
	}
	return n
}

func (t siteTraffic) hours() []int64 {
	out := make([]int64, len(t.Points))
	for i, p := range t.Points {
		out[i] = p.BytesIn + p.BytesOut
	}
	return out
}
