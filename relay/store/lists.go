package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// Paged lists. Every list that grows with a tenant (sites, users, tokens,
// devices, handles) is read a page at a time, in (created_at, id) order, so
// that an API call or a console page costs the same for a tenant with 20
// rows as for one with 20,000. A page ends with a cursor naming its last
// row; the next page starts after it, so rows added or removed meanwhile
// neither repeat nor shift the pages that follow (offsets would).

// Page asks for one page of a list.
type Page struct {
	// Limit is the most rows returned: <= 0 is DefaultPageLimit, more
	// than MaxPageLimit is MaxPageLimit.
	Limit int
	// Cursor is the Next of the previous page; "" is the first page.
	Cursor string
}

// Page sizes.
const (
	DefaultPageLimit = 100
	MaxPageLimit     = 1000
)

// ErrBadCursor is a cursor this store did not hand out.
var ErrBadCursor = fmt.Errorf("malformed page cursor")

// limit is the row count p asks for.
func (p Page) limit() int {
	switch {
	case p.Limit <= 0:
		return DefaultPageLimit
	case p.Limit > MaxPageLimit:
		return MaxPageLimit
	}
	return p.Limit
}

// after decodes the cursor into the (created_at, id) of the last row seen;
// the first page is after (-1, "").
func (p Page) after() (int64, string, error) {
	if p.Cursor == "" {
		return -1, "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(p.Cursor)
	if err != nil {
		return 0, "", ErrBadCursor
	}
	at, id, ok := strings.Cut(string(b), ",")
	n, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil || id == "" {
		return 0, "", ErrBadCursor
	}
	return n, id, nil
}

func cursor(createdUS int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(createdUS, 10) + "," + id))
}

// pageOf runs query, which must select rows of the parent `parent` after
// (created_at, id) = (?, ?) in that order with LIMIT ?, and returns one
// page and the cursor of the next ("" after the last).
func pageOf[T any](ctx context.Context, db querier, p Page, scan func(rowScanner) (T, error), key func(T) (int64, string), query string, parent any) ([]T, string, error) {
	at, id, err := p.after()
	if err != nil {
		return nil, "", err
	}
	n := p.limit()
	// One row more than asked says whether there is a next page.
	rows, err := queryAll(ctx, db, scan, query, parent, at, at, id, n+1)
	if err != nil {
		return nil, "", err
	}
	if len(rows) <= n {
		return rows, "", nil
	}
	rows = rows[:n]
	return rows, cursor(key(rows[n-1])), nil
}

// afterCursor is the keyset condition of pageOf's queries.
const afterCursor = `(created_at > ? OR (created_at = ? AND id > ?)) ORDER BY created_at, id LIMIT ?`

// ListTenants returns every tenant, by name: the superadmin's tenant
// picker. Tenants are few (customer organisations), so it is not paged.
func (s *sqlStore) ListTenants(ctx context.Context) ([]Tenant, error) {
	ts, err := queryAll(ctx, s.db, func(r rowScanner) (Tenant, error) {
		var t Tenant
		var created int64
		err := r.Scan(&t.ID, &t.Name, &created)
		t.CreatedAt = fromTS(created)
		return t, err
	}, `SELECT id, name, created_at FROM tenants ORDER BY name, id`)
	return ts, wrapf(err, "list tenants")
}

func scanSite(r rowScanner) (Site, error) {
	var site Site
	var created int64
	err := r.Scan(&site.ID, &site.TenantID, &site.Name, &site.AllowlistVersion, &site.AllowLoopback, &created)
	site.CreatedAt = fromTS(created)
	return site, err
}

// ListSites returns one page of the tenant's sites, oldest first.
func (s *sqlStore) ListSites(ctx context.Context, tenantID string, p Page) ([]Site, string, error) {
	sites, next, err := pageOf(ctx, s.db, p, scanSite, func(v Site) (int64, string) { return ts(v.CreatedAt), v.ID },
		`SELECT id, tenant_id, name, allowlist_version, allow_loopback, created_at FROM sites
		WHERE tenant_id = ? AND `+afterCursor, tenantID)
	return sites, next, wrapf(err, "list sites of tenant %s", tenantID)
}

// ListUsers returns one page of the tenant's users, oldest first.
func (s *sqlStore) ListUsers(ctx context.Context, tenantID string, p Page) ([]User, string, error) {
	users, next, err := pageOf(ctx, s.db, p, scanUser, func(v User) (int64, string) { return ts(v.CreatedAt), v.ID },
		`SELECT `+userCols+` FROM users WHERE tenant_id = ? AND `+afterCursor, tenantID)
	return users, next, wrapf(err, "list users of tenant %s", tenantID)
}

// apiTokenCols are the columns scanAPIToken reads.
const apiTokenCols = `id, user_id, COALESCE(tenant_id, ''), hash, label, created_at, revoked_at, last_used_at`

func scanAPIToken(r rowScanner) (APIToken, error) {
	var t APIToken
	var created int64
	var revoked, used sql.Null[int64]
	err := r.Scan(&t.ID, &t.UserID, &t.TenantID, &t.Hash, &t.Label, &created, &revoked, &used)
	t.CreatedAt, t.RevokedAt, t.LastUsedAt = fromTS(created), ptrTS(revoked), ptrTS(used)
	return t, err
}

// ListUserAPITokens returns one page of the user's API tokens, revoked
// ones included, oldest first.
func (s *sqlStore) ListUserAPITokens(ctx context.Context, userID string, p Page) ([]APIToken, string, error) {
	toks, next, err := pageOf(ctx, s.db, p, scanAPIToken, func(v APIToken) (int64, string) { return ts(v.CreatedAt), v.ID },
		`SELECT `+apiTokenCols+` FROM api_tokens WHERE user_id = ? AND `+afterCursor, userID)
	return toks, next, wrapf(err, "list api tokens of user %s", userID)
}

// ListTenantAgents returns one page of the agents of all the tenant's
// sites, revoked ones included, oldest first.
func (s *sqlStore) ListTenantAgents(ctx context.Context, tenantID string, p Page) ([]Agent, string, error) {
	as, next, err := pageOf(ctx, s.db, p, scanAgent, func(v Agent) (int64, string) { return ts(v.CreatedAt), v.ID },
		`SELECT `+agentCols+` FROM agents WHERE site_id IN (SELECT id FROM sites WHERE tenant_id = ?) AND `+afterCursor, tenantID)
	return as, next, wrapf(err, "list agents of tenant %s", tenantID)
}

// ListDevicesPage returns one page of the site's devices, oldest first.
func (s *sqlStore) ListDevicesPage(ctx context.Context, siteID string, p Page) ([]Device, string, error) {
	ds, next, err := pageOf(ctx, s.db, p, scanDevice, func(v Device) (int64, string) { return ts(v.CreatedAt), v.ID },
		`SELECT `+deviceCols+` FROM devices WHERE site_id = ? AND deleted_at IS NULL AND `+afterCursor, siteID)
	return ds, next, wrapf(err, "list devices of site %s", siteID)
}

// ListSiteHandles returns one page of the live (not revoked) handles of
// the site's devices that are not deleted, oldest first.
func (s *sqlStore) ListSiteHandles(ctx context.Context, siteID string, p Page) ([]Handle, string, error) {
	// The handle string is the row's id.
	hs, next, err := pageOf(ctx, s.db, p, scanHandle, func(v Handle) (int64, string) { return ts(v.CreatedAt), v.Handle },
		`SELECT handle, tenant_id, device_id, port, agent_id, expires_at, revoked_at, created_at FROM (
			SELECT h.handle, h.tenant_id, h.device_id, h.port, h.agent_id, h.expires_at, h.revoked_at, h.created_at, h.handle AS id
			FROM handles h JOIN devices d ON d.id = h.device_id
			WHERE d.site_id = ? AND d.deleted_at IS NULL AND h.revoked_at IS NULL) AS live
		WHERE `+afterCursor, siteID)
	return hs, next, wrapf(err, "list handles of site %s", siteID)
}

// CountDevices returns how many devices (not deleted) each of the sites
// has; a site without devices is absent from the map.
func (s *sqlStore) CountDevices(ctx context.Context, siteIDs []string) (map[string]int, error) {
	out := map[string]int{}
	if len(siteIDs) == 0 {
		return out, nil
	}
	args := make([]any, len(siteIDs))
	for i, id := range siteIDs {
		args[i] = id
	}
	rows, err := s.db.QueryContext(ctx, `SELECT site_id, COUNT(*) FROM devices
		WHERE site_id IN (?`+strings.Repeat(",?", len(siteIDs)-1)+`) AND deleted_at IS NULL GROUP BY site_id`, args...)
	if err != nil {
		return nil, wrapf(err, "count devices")
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, wrapf(err, "count devices")
		}
		out[id] = n
	}
	return out, wrapf(rows.Err(), "count devices")
}
