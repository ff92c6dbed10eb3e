package console

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Agent is an agent as GET /api/agents lists it.
type Agent struct {
	ID            string     `json:"id"`
	SiteID        string     `json:"site_id"`
	SiteName      string     `json:"site_name"`
	Online        bool       `json:"online"`
	Revoked       bool       `json:"revoked"`
	Relay         string     `json:"relay"`
	Version       string     `json:"version"`
	RemoteAddr    string     `json:"remote_addr"`
	LastHeartbeat *time.Time `json:"last_heartbeat"`
	ActiveStreams int64      `json:"active_streams"`
	BytesToday    uint64     `json:"bytes_today"`
	UDPDrops      uint64     `json:"udp_drops"`
	// TodayBytes and Last24h are from the relay's hourly rows: bytes
	// since UTC midnight, and per hour over the last 24, oldest first.
	TodayBytes int64   `json:"today_bytes"`
	Last24h    []int64 `json:"last_24h"`
}

// agentPage is one page of GET /api/agents.
type agentPage struct {
	Items []Agent `json:"items"`
	Next  string  `json:"next"`
}

// agentsPerPage is the Agents page's page size: an integrator's 2,000
// agents are twenty pages. The template costs about 25 µs of CPU a row,
// so 100 rows keep a render well inside the 50 ms p99 goal on a busy
// machine, where 250 rows did not (docs/perf-console.md).
const agentsPerPage = 100

// agentRow is an agent as the table shows it; the page's script gets the
// same rows as JSON every 5 s and rewrites the live cells.
type agentRow struct {
	ID         string `json:"id"`
	SiteID     string `json:"site_id"`
	Site       string `json:"site"`
	Status     string `json:"status"` // "online", "offline" or "revoked"
	Class      string `json:"-"`      // the status cell's class
	Revocable  bool   `json:"-"`      // not revoked yet
	Relay      string `json:"relay"`
	Version    string `json:"version"`
	Remote     string `json:"remote"`
	Heartbeat  string `json:"heartbeat"`
	HeartbeatS int64  `json:"heartbeat_unix"`
	Streams    int64  `json:"streams"`
	Bytes      string `json:"bytes"`
	BytesN     uint64 `json:"bytes_n"`
	// Today is the bytes since UTC midnight, restarts of the agent and
	// the relay included; Spark the last 24 hours (inline SVG).
	Today  string        `json:"today"`
	TodayN int64         `json:"today_n"`
	Spark  template.HTML `json:"-"`

	// UDPDrops: camera datagrams the agent's UDP relays lost since it
	// started ("—" offline).
	UDPDrops string `json:"udp_drops"`
}

func rowOf(a Agent) agentRow {
	r := agentRow{ID: a.ID, SiteID: a.SiteID, Site: a.SiteName, Status: "offline", Relay: "—", Version: "—", Remote: "—", Heartbeat: "—", UDPDrops: "—"}
	switch {
	case a.Revoked:
		r.Status = "revoked"
	case a.Online:
		r.Status, r.Relay, r.Version, r.Remote = "online", a.Relay, a.Version, a.RemoteAddr
		r.Streams, r.BytesN, r.Bytes = a.ActiveStreams, a.BytesToday, humanBytes(a.BytesToday)
		if r.Version == "" {
			r.Version = "—"
		}
		if a.LastHeartbeat != nil {
			r.Heartbeat, r.HeartbeatS = agoSeconds(*a.LastHeartbeat), a.LastHeartbeat.Unix()
			r.UDPDrops = strconv.FormatUint(a.UDPDrops, 10)
		}
	}
	if r.Bytes == "" {
		r.Bytes = "—"
	}
	r.TodayN, r.Today = a.TodayBytes, humanBytes(uint64(max(a.TodayBytes, 0)))
	r.Spark = sparkline(a.Last24h, "Agent "+a.ID)
	r.Revocable = !a.Revoked
	r.Class = "off"
	if r.Status == "online" {
		r.Class = "ok"
	}
	return r
}

type agentsView struct {
	Rows   []agentRow
	Online int
	More   string
	Cursor string // this page's cursor, which the refresh asks for again
	// Revoke is the agent whose Revoke confirmation is open: without the
	// script, a row's Revoke is a link to ?revoke=, which renders it.
	Revoke *agentRow
}

// agentsPage (GET /agents) is every agent of the tenant, a page at a
// time, with its live state on this relay. Asked for JSON (the page's
// script, every 5 s), it answers the rows only.
func (h *Handler) agentsPage(w http.ResponseWriter, r *http.Request, c *call) error {
	if c.Who.TenantID == "" {
		return errNoTenant
	}
	cur := r.URL.Query().Get("cursor")
	var page agentPage
	path := fmt.Sprintf("/api/agents?limit=%d&cursor=%s", agentsPerPage, url.QueryEscape(cur))
	if err := c.Call("GET", path, nil, &page); err != nil {
		return err
	}
	v := agentsView{Rows: make([]agentRow, len(page.Items)), More: page.Next, Cursor: cur}
	for i, a := range page.Items {
		v.Rows[i] = rowOf(a)
		if v.Rows[i].Status == "online" {
			v.Online++
		}
	}
	if id := r.URL.Query().Get("revoke"); id != "" {
		for i := range v.Rows {
			if v.Rows[i].ID == id && v.Rows[i].Revocable {
				v.Revoke = &v.Rows[i]
			}
		}
		if v.Revoke == nil {
			return errNotFound
		}
	}
	if wantsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		return json.NewEncoder(w).Encode(map[string]any{"rows": v.Rows, "online": v.Online})
	}
	return h.render(w, r, c, http.StatusOK, "agents", "agents", v)
}

// revokeAgent (POST /agents/{agentId}/revoke) revokes an agent: the
// relay closes its session at once and refuses its certificate from then
// on.
func (h *Handler) revokeAgent(w http.ResponseWriter, r *http.Request, c *call) error {
	id := r.PathValue("agentId")
	var out struct {
		Disconnected bool `json:"disconnected"`
	}
	if err := c.Call("POST", "/api/agents/"+url.PathEscape(id)+"/revoke", nil, &out); err != nil {
		return err
	}
	msg := "Agent " + id + " revoked."
	if out.Disconnected {
		msg += " Its session was closed."
	}
	return h.redirect(w, r, "/agents", msg)
}

// humanBytes is a byte count in binary units.
func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// agoSeconds is how long ago t was, to the second: a heartbeat every 5 s
// needs finer steps than ago's minutes.
func agoSeconds(t time.Time) string {
	d := time.Since(t)
	if d < time.Minute {
		return fmt.Sprintf("%d s ago", max(0, int(d/time.Second)))
	}
	return ago(t)
}
