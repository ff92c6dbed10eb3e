package relay

import (
	"fmt"
	"net/http"
	"time"

	"github.com/nanodems/connector/relay/rollup"
	"github.com/nanodems/connector/relay/store"
)

// The stats routes answer the traffic history of an agent, a site or a
// device (relay/rollup): ?range=24h (hourly points, the default), 30d or
// 365d (daily points). Each checks the caller's tenant as the object's
// other routes do: another tenant's id is a 404.

func (s *managementAPI) agentStats(w http.ResponseWriter, r *http.Request, p Principal) error {
	id := r.PathValue("agentId")
	a, err := s.store.GetAgent(r.Context(), id)
	if err != nil {
		return lookup(err, "agent "+id)
	}
	if _, err := s.siteFor(r, p, a.SiteID); err != nil {
		return err
	}
	return s.writeStats(w, r, store.StatScope{AgentID: a.ID}, map[string]any{"agent_id": a.ID, "site_id": a.SiteID})
}

func (s *managementAPI) siteStats(w http.ResponseWriter, r *http.Request, p Principal) error {
	site, err := s.siteFor(r, p, r.PathValue("siteId"))
	if err != nil {
		return err
	}
	return s.writeStats(w, r, store.StatScope{SiteID: site.ID}, map[string]any{"site_id": site.ID})
}

func (s *managementAPI) deviceStats(w http.ResponseWriter, r *http.Request, p Principal) error {
	d, _, err := s.deviceFor(r, p)
	if err != nil {
		return err
	}
	return s.writeStats(w, r, deviceScope(d), map[string]any{"device_id": d.ID, "site_id": d.SiteID})
}

// deviceScope is the stats of a device: its host and ports, through the
// agents of its site.
func deviceScope(d store.Device) store.StatScope {
	sc := store.StatScope{SiteID: d.SiteID, Host: d.Host}
	for _, p := range d.Ports {
		sc.Ports = append(sc.Ports, uint16(p))
	}
	return sc
}

func (s *managementAPI) writeStats(w http.ResponseWriter, r *http.Request, scope store.StatScope, out map[string]any) error {
	rng := r.URL.Query().Get("range")
	if rng == "" {
		rng = "24h"
	}
	if _, ok := rollup.Ranges[rng]; !ok {
		return fmt.Errorf("%w: range must be 24h, 30d or 365d", errBadRequest)
	}
	now := s.cfg.Now()
	series, err := rollup.Query(r.Context(), s.store, scope, rng, now)
	if err != nil {
		return err
	}
	byPort, today, err := rollup.Today(r.Context(), s.store, scope, now)
	if err != nil {
		return err
	}
	todayBytes := make(map[string]int64, len(byPort))
	for k, c := range byPort {
		todayBytes[k] = c.Bytes()
	}
	out["range"], out["step"], out["points"], out["total"], out["today"] = series.Range, series.Step, series.Points, series.Total, today
	out["today_bytes_by_port"] = todayBytes // "host:port" → bytes both ways since UTC midnight
	writeJSON(w, http.StatusOK, out)
	return nil
}

// addTraffic adds to each agent of a list its bytes today ("today_bytes",
// both ways since UTC midnight) and the bytes of each of the last 24
// hours, oldest first ("last_24h"), from the hourly rows: one query for
// the whole list.
func (s *managementAPI) addTraffic(r *http.Request, items []map[string]any) error {
	if len(items) == 0 {
		return nil
	}
	ids := make([]string, len(items))
	for i, j := range items {
		ids[i] = j["id"].(string)
	}
	now := s.cfg.Now().UTC()
	last := now.Truncate(time.Hour)
	from := last.Add(-23 * time.Hour)
	midnight := now.Truncate(24 * time.Hour)
	rows, err := s.store.HourlyStats(r.Context(), store.StatScope{AgentIDs: ids}, from, last.Add(time.Hour))
	if err != nil {
		return err
	}
	hours := make(map[string][]int64, len(ids))
	today := make(map[string]int64, len(ids))
	for _, id := range ids {
		hours[id] = make([]int64, 24)
	}
	for _, row := range rows {
		if i := int(row.Start.Sub(from) / time.Hour); i >= 0 && i < 24 {
			hours[row.AgentID][i] += row.Bytes()
		}
		if !row.Start.Before(midnight) {
			today[row.AgentID] += row.Bytes()
		}
	}
	for i, j := range items {
		j["today_bytes"], j["last_24h"] = today[ids[i]], hours[ids[i]]
	}
	return nil
}
