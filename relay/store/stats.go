package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// StatCounts are traffic counters of one device port: running totals in
// a sample, what was moved in an hourly or daily row.
type StatCounts struct {
	BytesIn     int64 `json:"bytes_in"`  // device → relay
	BytesOut    int64 `json:"bytes_out"` // relay → device
	OpenedOK    int64 `json:"opened_ok"`
	Refused     int64 `json:"refused"`
	Unreachable int64 `json:"unreachable"`
	NotAllowed  int64 `json:"not_allowed"`
	Dedicated   int64 `json:"dedicated"` // tunnels moved to a dedicated connection
}

// Add is c + d field by field.
func (c StatCounts) Add(d StatCounts) StatCounts {
	return StatCounts{c.BytesIn + d.BytesIn, c.BytesOut + d.BytesOut, c.OpenedOK + d.OpenedOK, c.Refused + d.Refused,
		c.Unreachable + d.Unreachable, c.NotAllowed + d.NotAllowed, c.Dedicated + d.Dedicated}
}

// sub is c − d field by field, each floored at zero: a count that went
// down (a snapshot taken while a tunnel ended) brought nothing new.
func (c StatCounts) sub(d StatCounts) StatCounts {
	f := func(a, b int64) int64 { return max(a-b, 0) }
	return StatCounts{f(c.BytesIn, d.BytesIn), f(c.BytesOut, d.BytesOut), f(c.OpenedOK, d.OpenedOK), f(c.Refused, d.Refused),
		f(c.Unreachable, d.Unreachable), f(c.NotAllowed, d.NotAllowed), f(c.Dedicated, d.Dedicated)}
}

func (c StatCounts) max(d StatCounts) StatCounts {
	return StatCounts{max(c.BytesIn, d.BytesIn), max(c.BytesOut, d.BytesOut), max(c.OpenedOK, d.OpenedOK), max(c.Refused, d.Refused),
		max(c.Unreachable, d.Unreachable), max(c.NotAllowed, d.NotAllowed), max(c.Dedicated, d.Dedicated)}
}

// Bytes is both directions.
func (c StatCounts) Bytes() int64 { return c.BytesIn + c.BytesOut }

// StatSample is one port's running totals from an agent's heartbeat
// (mux.AgentStats): since the counters' Epoch, in the agent's Boot-th
// start, which began at Base.
type StatSample struct {
	AgentID string
	Host    string
	Port    uint16
	Epoch   string
	Boot    int64
	At      time.Time
	Totals  StatCounts
	Base    StatCounts
}

// StatRow is the counts of one agent and port over one hour or day.
type StatRow struct {
	AgentID string
	Host    string
	Port    uint16
	Start   time.Time // the hour's or the day's start, UTC
	StatCounts
}

// StatScope chooses the rows a stats query sums: one agent, the agents
// of one site, or one device (its host and ports, through the agents of
// its site). Exactly one of AgentID, AgentIDs and SiteID is set; Host and
// Ports narrow a site to one device.
type StatScope struct {
	AgentID  string
	AgentIDs []string // several agents, in place of AgentID
	SiteID   string
	Host     string
	Ports    []uint16
}

const (
	hourUS = int64(time.Hour / time.Microsecond)
	dayUS  = 24 * hourUS
)

// countCols are the counter columns, in StatCounts order.
const countCols = "bytes_in, bytes_out, opened_ok, refused, unreachable, not_allowed, dedicated"

func countArgs(c StatCounts) []any {
	return []any{c.BytesIn, c.BytesOut, c.OpenedOK, c.Refused, c.Unreachable, c.NotAllowed, c.Dedicated}
}

func countDest(c *StatCounts) []any {
	return []any{&c.BytesIn, &c.BytesOut, &c.OpenedOK, &c.Refused, &c.Unreachable, &c.NotAllowed, &c.Dedicated}
}

// AddStatSamples records heartbeat samples for the hourly rollup. A
// sample already recorded (same agent, port, epoch, boot and time) is
// kept as it was.
func (s *sqlStore) AddStatSamples(ctx context.Context, samples []StatSample) error {
	if len(samples) == 0 {
		return nil
	}
	err := s.write(ctx, func(tx *txn) error {
		for _, sm := range samples {
			args := []any{sm.AgentID, sm.Host, int(sm.Port), sm.Epoch, sm.Boot, ts(sm.At)}
			args = append(append(args, countArgs(sm.Totals)...), countArgs(sm.Base)...)
			_, err := tx.ExecContext(ctx, `INSERT INTO stat_samples (agent_id, host, port, epoch, boot, at, `+countCols+`,
				base_bytes_in, base_bytes_out, base_opened_ok, base_refused, base_unreachable, base_not_allowed, base_dedicated)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (agent_id, host, port, epoch, boot, at) DO NOTHING`, args...)
			if err != nil {
				return err
			}
		}
		return nil
	})
	return wrapf(err, "add %d stat samples", len(samples))
}

// statCursor is what the rollup has counted of one agent's port.
type statCursor struct {
	epoch  string
	boot   int64
	at     int64
	totals StatCounts
	known  bool
	dirty  bool
}

type portKey struct {
	agent, host string
	port        int
}

type hourKey struct {
	portKey
	hour int64
}

// RollupHourlyStats folds every recorded sample into the hourly rows and
// deletes it, in one transaction, and returns how many it folded. Each
// sample adds what it counts beyond its port's cursor to the hour it was
// taken in:
//
//   - same epoch and boot as the cursor: its totals minus the cursor's;
//   - a later boot, a later epoch, or no cursor yet: its totals minus its
//     Base, what that boot counted (a restarted agent's first sample);
//   - an earlier boot or epoch (a sample written late): nothing.
//
// Run by one relay at a time (the relay's TTL lock): two at once could
// both fold a sample.
func (s *sqlStore) RollupHourlyStats(ctx context.Context) (int, error) {
	n := 0
	err := s.write(ctx, func(tx *txn) error {
		n = 0
		rows, err := tx.QueryContext(ctx, `SELECT agent_id, host, port, epoch, boot, at, `+countCols+`,
			base_bytes_in, base_bytes_out, base_opened_ok, base_refused, base_unreachable, base_not_allowed, base_dedicated
			FROM stat_samples ORDER BY agent_id, host, port, at, epoch, boot`)
		if err != nil {
			return err
		}
		type sample struct {
			k           portKey
			epoch       string
			boot, at    int64
			totals, bas StatCounts
		}
		var samples []sample
		for rows.Next() {
			var sm sample
			dest := []any{&sm.k.agent, &sm.k.host, &sm.k.port, &sm.epoch, &sm.boot, &sm.at}
			dest = append(append(dest, countDest(&sm.totals)...), countDest(&sm.bas)...)
			if err := rows.Scan(dest...); err != nil {
				rows.Close()
				return err
			}
			samples = append(samples, sm)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		cursors := make(map[portKey]*statCursor)
		hours := make(map[hourKey]StatCounts)
		for _, sm := range samples {
			c := cursors[sm.k]
			if c == nil {
				c = &statCursor{}
				var err error
				*c, err = loadCursor(ctx, tx, sm.k)
				if err != nil {
					return err
				}
				cursors[sm.k] = c
			}
			var add StatCounts
			switch {
			case c.known && sm.epoch == c.epoch && sm.boot == c.boot:
				add = sm.totals.sub(c.totals)
				c.totals = c.totals.max(sm.totals)
			case !c.known || sm.epoch > c.epoch || (sm.epoch == c.epoch && sm.boot > c.boot):
				add = sm.totals.sub(sm.bas)
				c.epoch, c.boot, c.totals, c.known = sm.epoch, sm.boot, sm.totals, true
			default:
				// An earlier run's sample, written after a later one's.
			}
			c.at, c.dirty = max(c.at, sm.at), true
			hk := hourKey{sm.k, sm.at - sm.at%hourUS}
			hours[hk] = hours[hk].Add(add)
			if _, err := tx.ExecContext(ctx, `DELETE FROM stat_samples WHERE agent_id = ? AND host = ? AND port = ? AND epoch = ? AND boot = ? AND at = ?`,
				sm.k.agent, sm.k.host, sm.k.port, sm.epoch, sm.boot, sm.at); err != nil {
				return err
			}
			n++
		}
		for hk, c := range hours {
			if c == (StatCounts{}) {
				continue
			}
			args := append([]any{hk.agent, hk.host, hk.port, hk.hour}, countArgs(c)...)
			if _, err := tx.ExecContext(ctx, `INSERT INTO stat_hourly (agent_id, host, port, hour, `+countCols+`)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (agent_id, host, port, hour) DO UPDATE SET
					bytes_in = stat_hourly.bytes_in + excluded.bytes_in, bytes_out = stat_hourly.bytes_out + excluded.bytes_out,
					opened_ok = stat_hourly.opened_ok + excluded.opened_ok, refused = stat_hourly.refused + excluded.refused,
					unreachable = stat_hourly.unreachable + excluded.unreachable, not_allowed = stat_hourly.not_allowed + excluded.not_allowed,
					dedicated = stat_hourly.dedicated + excluded.dedicated`, args...); err != nil {
				return err
			}
		}
		for k, c := range cursors {
			if !c.dirty || !c.known {
				continue
			}
			args := append([]any{k.agent, k.host, k.port, c.epoch, c.boot, c.at}, countArgs(c.totals)...)
			if _, err := tx.ExecContext(ctx, `INSERT INTO stat_cursors (agent_id, host, port, epoch, boot, at, `+countCols+`)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (agent_id, host, port) DO UPDATE SET epoch = excluded.epoch, boot = excluded.boot, at = excluded.at,
					bytes_in = excluded.bytes_in, bytes_out = excluded.bytes_out, opened_ok = excluded.opened_ok, refused = excluded.refused,
					unreachable = excluded.unreachable, not_allowed = excluded.not_allowed, dedicated = excluded.dedicated`, args...); err != nil {
				return err
			}
		}
		return nil
	})
	return n, wrapf(err, "hourly stats rollup")
}

func loadCursor(ctx context.Context, tx *txn, k portKey) (statCursor, error) {
	var c statCursor
	dest := append([]any{&c.epoch, &c.boot, &c.at}, countDest(&c.totals)...)
	err := tx.QueryRowContext(ctx, `SELECT epoch, boot, at, `+countCols+` FROM stat_cursors WHERE agent_id = ? AND host = ? AND port = ?`,
		k.agent, k.host, k.port).Scan(dest...)
	if err == nil {
		c.known = true
		return c, nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return c, nil
	}
	return c, err
}

// RollupDailyStats rewrites the daily rows of the UTC days from from's
// through to's from their hourly rows: a day's row is the sum of its
// hours, however often it is rewritten.
func (s *sqlStore) RollupDailyStats(ctx context.Context, from, to time.Time) error {
	first, last := dayStart(from), dayStart(to)+dayUS
	err := s.write(ctx, func(tx *txn) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM stat_daily WHERE day >= ? AND day < ?`, first, last); err != nil {
			return err
		}
		// The day's length is written into the query: PostgreSQL does
		// not take two placeholders of one value for one expression.
		_, err := tx.ExecContext(ctx, fmt.Sprintf(`INSERT INTO stat_daily (agent_id, host, port, day, `+countCols+`)
			SELECT agent_id, host, port, hour - hour %% %[1]d, SUM(bytes_in), SUM(bytes_out), SUM(opened_ok), SUM(refused),
				SUM(unreachable), SUM(not_allowed), SUM(dedicated)
			FROM stat_hourly WHERE hour >= ? AND hour < ?
			GROUP BY agent_id, host, port, hour - hour %% %[1]d`, dayUS), first, last)
		return err
	})
	return wrapf(err, "daily stats rollup %s..%s", from.UTC().Format(time.DateOnly), to.UTC().Format(time.DateOnly))
}

// PruneStats deletes the rows past retention: the hourly rows of hours
// that ended at or before hourlyCut, the daily rows of days that ended at
// or before dailyCut. It returns how many of each.
func (s *sqlStore) PruneStats(ctx context.Context, hourlyCut, dailyCut time.Time) (hours, days int, err error) {
	err = s.write(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM stat_hourly WHERE hour <= ?`, ts(hourlyCut)-hourUS)
		if err != nil {
			return err
		}
		h, _ := res.RowsAffected()
		res, err = tx.ExecContext(ctx, `DELETE FROM stat_daily WHERE day <= ?`, ts(dailyCut)-dayUS)
		if err != nil {
			return err
		}
		d, _ := res.RowsAffected()
		hours, days = int(h), int(d)
		return nil
	})
	return hours, days, wrapf(err, "prune stats")
}

// HourlyStats returns the hourly rows in scope of the hours that began
// in [from, to), by hour, agent, host and port.
func (s *sqlStore) HourlyStats(ctx context.Context, scope StatScope, from, to time.Time) ([]StatRow, error) {
	out, err := s.statRows(ctx, "stat_hourly", "hour", scope, from, to)
	return out, wrapf(err, "hourly stats")
}

// DailyStats returns the daily rows in scope of the days that began in
// [from, to), by day, agent, host and port.
func (s *sqlStore) DailyStats(ctx context.Context, scope StatScope, from, to time.Time) ([]StatRow, error) {
	out, err := s.statRows(ctx, "stat_daily", "day", scope, from, to)
	return out, wrapf(err, "daily stats")
}

func (s *sqlStore) statRows(ctx context.Context, table, col string, scope StatScope, from, to time.Time) ([]StatRow, error) {
	where, args, err := scope.where()
	if err != nil {
		return nil, err
	}
	args = append(args, ts(from), ts(to))
	q := fmt.Sprintf(`SELECT agent_id, host, port, %[2]s, `+countCols+` FROM %[1]s WHERE %[3]s AND %[2]s >= ? AND %[2]s < ?
		ORDER BY %[2]s, agent_id, host, port`, table, col, where)
	return queryAll(ctx, s.db, func(r rowScanner) (StatRow, error) {
		var row StatRow
		var port int
		var start int64
		err := r.Scan(append([]any{&row.AgentID, &row.Host, &port, &start}, countDest(&row.StatCounts)...)...)
		row.Port, row.Start = uint16(port), fromTS(start)
		return row, err
	}, q, args...)
}

func (sc StatScope) where() (string, []any, error) {
	var w []string
	var args []any
	switch {
	case len(sc.AgentIDs) > 0 && sc.AgentID == "" && sc.SiteID == "":
		ph := make([]string, len(sc.AgentIDs))
		for i, id := range sc.AgentIDs {
			ph[i], args = "?", append(args, id)
		}
		w = append(w, "agent_id IN ("+strings.Join(ph, ", ")+")")
	case sc.AgentID != "" && sc.SiteID == "":
		w, args = append(w, "agent_id = ?"), append(args, sc.AgentID)
	case sc.SiteID != "" && sc.AgentID == "":
		w, args = append(w, "agent_id IN (SELECT id FROM agents WHERE site_id = ?)"), append(args, sc.SiteID)
	default:
		return "", nil, fmt.Errorf("stats scope needs one agent or one site")
	}
	if sc.Host != "" {
		if len(sc.Ports) == 0 {
			return "", nil, fmt.Errorf("stats scope of host %s names no port", sc.Host)
		}
		w, args = append(w, "host = ?"), append(args, sc.Host)
		ph := make([]string, len(sc.Ports))
		for i, p := range sc.Ports {
			ph[i], args = "?", append(args, int(p))
		}
		w = append(w, "port IN ("+strings.Join(ph, ", ")+")")
	}
	return strings.Join(w, " AND "), args, nil
}

// dayStart is the stored form of the start of t's UTC day.
func dayStart(t time.Time) int64 {
	us := ts(t)
	return us - us%dayUS
}
