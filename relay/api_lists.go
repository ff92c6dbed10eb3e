package relay

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/nanodems/connector/relay/store"
)

// The paged lists of the API: a tenant's sites and users, a user's API
// tokens, a site's devices and handles. Each answers
// {"items": [...], "next": "<cursor>"}, next only when there is a further
// page: ?limit= (1–1000, default 100) and ?cursor= (a next) select the
// page (docs/api.md, "Lists").

// pageOf reads ?limit= and ?cursor=.
func pageOf(r *http.Request) (store.Page, error) {
	q := r.URL.Query()
	p := store.Page{Cursor: q.Get("cursor")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > store.MaxPageLimit {
			return p, fmt.Errorf("%w: limit must be a number from 1 to %d", errBadRequest, store.MaxPageLimit)
		}
		p.Limit = n
	}
	return p, nil
}

// listErr words a store error of a paged list.
func listErr(err error) error {
	if errors.Is(err, store.ErrBadCursor) {
		return fmt.Errorf("%w: cursor is not one this list handed out", errBadRequest)
	}
	return err
}

// listPage reads the page r asks for (pageOf) of the list of id, with a
// cursor this list did not hand out refused as bad input (listErr).
func listPage[T any](r *http.Request, id string, list func(context.Context, string, store.Page) ([]T, string, error)) ([]T, string, error) {
	pg, err := pageOf(r)
	if err != nil {
		return nil, "", err
	}
	items, next, err := list(r.Context(), id, pg)
	return items, next, listErr(err)
}

// writePage answers one page of a list.
func writePage[T any](w http.ResponseWriter, items []T, next string) {
	out := map[string]any{"items": items}
	if next != "" {
		out["next"] = next
	}
	writeJSON(w, http.StatusOK, out)
}

// tenantFor checks that p may act in tenantID and that it exists.
func (s *managementAPI) tenantFor(r *http.Request, p Principal, tenantID string) (store.Tenant, error) {
	if !p.canAccess(tenantID) {
		return store.Tenant{}, fmt.Errorf("%w: tenant is not yours", errForbidden)
	}
	t, err := s.store.GetTenant(r.Context(), tenantID)
	return t, lookup(err, "tenant "+tenantID)
}

// listSites is GET /api/tenants/{tenantId}/sites: the tenant's sites with
// their device counts.
func (s *managementAPI) listSites(w http.ResponseWriter, r *http.Request, p Principal) error {
	t, err := s.tenantFor(r, p, r.PathValue("tenantId"))
	if err != nil {
		return err
	}
	sites, next, err := listPage(r, t.ID, s.store.ListSites)
	if err != nil {
		return err
	}
	ids := make([]string, len(sites))
	for i, site := range sites {
		ids[i] = site.ID
	}
	counts, err := s.store.CountDevices(r.Context(), ids)
	if err != nil {
		return err
	}
	items := make([]map[string]any, len(sites))
	for i, site := range sites {
		items[i] = siteJSON(site)
		items[i]["device_count"] = counts[site.ID]
	}
	writePage(w, items, next)
	return nil
}

// listUsers is GET /api/tenants/{tenantId}/users.
func (s *managementAPI) listUsers(w http.ResponseWriter, r *http.Request, p Principal) error {
	t, err := s.tenantFor(r, p, r.PathValue("tenantId"))
	if err != nil {
		return err
	}
	users, next, err := listPage(r, t.ID, s.store.ListUsers)
	if err != nil {
		return err
	}
	items := make([]map[string]any, len(users))
	for i, u := range users {
		items[i] = map[string]any{"id": u.ID, "tenant_id": u.TenantID, "email": u.Email, "superadmin": u.Superadmin, "created_at": u.CreatedAt}
	}
	writePage(w, items, next)
	return nil
}

// listUserTokens is GET /api/users/{userId}/tokens: the admin key, or the
// user themself, sees the user's tokens (never their secret).
func (s *managementAPI) listUserTokens(w http.ResponseWriter, r *http.Request, p Principal) error {
	userID := r.PathValue("userId")
	if !p.Admin && p.UserID != userID {
		return fmt.Errorf("%w: users list their own tokens only", errForbidden)
	}
	u, err := s.store.GetUser(r.Context(), userID)
	if err != nil {
		return lookup(err, "user "+userID)
	}
	toks, next, err := listPage(r, u.ID, s.store.ListUserAPITokens)
	if err != nil {
		return err
	}
	items := make([]map[string]any, len(toks))
	for i, t := range toks {
		items[i] = map[string]any{"id": t.ID, "user_id": t.UserID, "tenant_id": t.TenantID, "label": t.Label, "created_at": t.CreatedAt,
			"last_used_at": t.LastUsedAt, "revoked_at": t.RevokedAt}
	}
	writePage(w, items, next)
	return nil
}

// listDevices is GET /api/sites/{siteId}/devices: the site's devices with
// their live handles.
func (s *managementAPI) listDevices(w http.ResponseWriter, r *http.Request, p Principal) error {
	site, err := s.siteFor(r, p, r.PathValue("siteId"))
	if err != nil {
		return err
	}
	devs, next, err := listPage(r, site.ID, s.store.ListDevicesPage)
	if err != nil {
		return err
	}
	items := make([]map[string]any, 0, len(devs))
	for _, d := range devs {
		j, err := s.deviceJSON(r.Context(), d, 0)
		if err != nil {
			return err
		}
		items = append(items, j)
	}
	writePage(w, items, next)
	return nil
}

// listSiteHandles is GET /api/sites/{siteId}/handles: the live handles of
// the site's devices.
func (s *managementAPI) listSiteHandles(w http.ResponseWriter, r *http.Request, p Principal) error {
	site, err := s.siteFor(r, p, r.PathValue("siteId"))
	if err != nil {
		return err
	}
	hs, next, err := listPage(r, site.ID, s.store.ListSiteHandles)
	if err != nil {
		return err
	}
	items := make([]map[string]any, len(hs))
	for i, h := range hs {
		items[i] = handleJSON(h)
	}
	writePage(w, items, next)
	return nil
}

// handleJSON is a handle as the API shows it.
func handleJSON(h store.Handle) map[string]any {
	return map[string]any{"handle": h.Handle, "device_id": h.DeviceID, "port": h.Port, "tenant_id": h.TenantID,
		"agent_id": h.AgentID, "expires_at": h.ExpiresAt, "created_at": h.CreatedAt}
}
