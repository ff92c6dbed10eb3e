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
			return fmt.Errorf("%w: tenant_id is required with the admin key", errBadRequest)
		}
		tenantID = p.TenantID
	}
	t, err := s.tenantFor(r, p, tenantID)
	if err != nil {
		return err
	}
	pg, err := pageOf(r)
	if err != nil {
		return err
	}
	agents, next, err := s.store.ListTenantAgents(r.Context(), t.ID, pg)
	if err != nil {
		return listErr(err)
	}
	// Each site of the page is read once.
	sites := map[string]store.Site{}
	items := make([]map[string]any, 0, len(agents))
	for _, a := range agents {
		site, ok := sites[a.SiteID]
		if !ok {
			if site, err = s.store.GetSite(r.Context(), a.SiteID); err != nil {
				return fmt.Errorf("site %s of agent %s: %w", a.SiteID, a.ID, err)
			}
			sites[a.SiteID] = site
		}
		j := s.agentJSON(a)
		j["site_name"] = site.Name
		items = append(items, j)
	}
	writePage(w, items, next)
	return nil
}
