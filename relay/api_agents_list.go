package relay

import (
	"fmt"
	"net/http"

	"github.com/nanodems/connector/relay/store"
)

// listTenantAgents is GET /api/agents: one page of every agent of a
// tenant's sites, each with its site's name and, when it is connected to
// this relay, its live fields (agentJSON). A user lists their own tenant
// (tenant_id may name it, or be left out); the admin key names the
// tenant with ?tenant_id=. The console's Agents page renders it and
// refreshes its live fields from it.
func (s *managementAPI) listTenantAgents(w http.ResponseWriter, r *http.Request, p Principal) error {
	tenantID := r.URL.Query().Get("tenant_id")
	if tenantID == "" {
		if p.TenantID == "" {
			return fmt.Errorf("%w: tenant_id is required", errBadRequest)
		}
		tenantID = p.TenantID
	}
	t, err := s.tenantFor(r, p, tenantID)
	if err != nil {
		return err
	}
	agents, next, err := listPage(r, t.ID, s.store.ListTenantAgents)
	if err != nil {
		return err
	}
	names, err := s.siteNames(r, t.ID, agents)
	if err != nil {
		return err
	}
	leases, err := s.store.ListTenantLeases(r.Context(), t.ID, s.cfg.Now())
	if err != nil {
		return err
	}
	held := s.heldElsewhere(leases)
	items := make([]map[string]any, 0, len(agents))
	for _, a := range agents {
		j := s.agentJSON(a, held)
		j["site_name"] = names[a.SiteID]
		items = append(items, j)
	}
	if err := s.addTraffic(r, items); err != nil { // relay/api_stats.go
		return err
	}
	writePage(w, items, next)
	return nil
}

// siteNames names the sites of agents, reading the tenant's sites a page
// of 1,000 at a time until every one is found: one query for a tenant
// with up to 1,000 sites, rather than one per site.
func (s *managementAPI) siteNames(r *http.Request, tenantID string, agents []store.Agent) (map[string]string, error) {
	want := map[string]bool{}
	for _, a := range agents {
		want[a.SiteID] = true
	}
	names := make(map[string]string, len(want))
	pg := store.Page{Limit: store.MaxPageLimit}
	for len(names) < len(want) {
		sites, next, err := s.store.ListSites(r.Context(), tenantID, pg)
		if err != nil {
			return nil, err
		}
		for _, site := range sites {
			if want[site.ID] {
				names[site.ID] = site.Name
			}
		}
		if next == "" {
			break
		}
		pg.Cursor = next
	}
	return names, nil
}
