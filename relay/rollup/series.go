package rollup

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nanodems/connector/relay/store"
)

// Ranges a series may cover, as the API names them.
var Ranges = map[string]struct {
	Step  time.Duration
	Count int
}{
	"24h":  {time.Hour, 24},
	"30d":  {24 * time.Hour, 30},
	"365d": {24 * time.Hour, 365},
}

// Point is the counts of one hour or day.
type Point struct {
	Start time.Time `json:"start"`
	store.StatCounts
}

// Series is a range of points, oldest first, every step present (zero
// when nothing moved), ending with the step now is in.
type Series struct {
	Range  string           `json:"range"`
	Step   string           `json:"step"` // "hour" or "day"
	Points []Point          `json:"points"`
	Total  store.StatCounts `json:"total"`
}

// Query reads the series of scope over rng at now: "24h" from the hourly
// rows, "30d" and "365d" from the daily rows and, for today, the hourly
// rows.
func Query(ctx context.Context, st store.Store, scope store.StatScope, rng string, now time.Time) (Series, error) {
	r, ok := Ranges[rng]
	if !ok {
		return Series{}, fmt.Errorf("range must be 24h, 30d or 365d, not %q", rng)
	}
	now = now.UTC()
	last := now.Truncate(r.Step)
	from := last.Add(-time.Duration(r.Count-1) * r.Step)
	var rows []store.StatRow
	var err error
	step := "hour"
	if r.Step == time.Hour {
		rows, err = st.HourlyStats(ctx, scope, from, last.Add(r.Step))
	} else {
		// Days before today from the daily rows; today from its hours,
		// which are current to the last hourly rollup while today's
		// daily row waits for the next daily one.
		step = "day"
		rows, err = st.DailyStats(ctx, scope, from, last)
		if err == nil {
			var today []store.StatRow
			today, err = st.HourlyStats(ctx, scope, last, last.Add(r.Step))
			for _, h := range today {
				h.Start = last
				rows = append(rows, h)
			}
		}
	}
	if err != nil {
		return Series{}, err
	}
	s := Series{Range: rng, Step: step, Points: make([]Point, r.Count)}
	for i := range s.Points {
		s.Points[i].Start = from.Add(time.Duration(i) * r.Step)
	}
	for _, row := range rows {
		i := int(row.Start.Sub(from) / r.Step)
		if i >= 0 && i < r.Count {
			s.Points[i].StatCounts = s.Points[i].StatCounts.Add(row.StatCounts)
			s.Total = s.Total.Add(row.StatCounts)
		}
	}
	return s, nil
}

// Today is the counts of scope since UTC midnight, from the hourly rows,
// by device port ("host:port"), and their sum.
func Today(ctx context.Context, st store.Store, scope store.StatScope, now time.Time) (map[string]store.StatCounts, store.StatCounts, error) {
	day := now.UTC().Truncate(24 * time.Hour)
	rows, err := st.HourlyStats(ctx, scope, day, day.Add(24*time.Hour))
	if err != nil {
		return nil, store.StatCounts{}, err
	}
	by := make(map[string]store.StatCounts)
	var total store.StatCounts
	for _, r := range rows {
		k := net.JoinHostPort(r.Host, strconv.Itoa(int(r.Port)))
		by[k] = by[k].Add(r.StatCounts)
		total = total.Add(r.StatCounts)
	}
	return by, total, nil
}
