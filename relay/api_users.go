package relay

import (
	"fmt"
	"net/http"

	"github.com/nanodems/connector/relay/store"
)

// disableUser is DELETE /api/users/{userId}: the admin key disables a
// user. The account stays (tokens, sessions and audit rows name it) but
// signs in and calls nothing again: every credential of theirs is
// revoked in the same write, and everything those credentials opened, on
// every access path, is cut here and, through the change feed, on every
// other relay.
func (s *managementAPI) disableUser(w http.ResponseWriter, r *http.Request, p Principal) error {
	userID := r.PathValue("userId")
	if !p.Admin {
		return fmt.Errorf("%w: disabling users needs the admin key", errForbidden)
	}
	u, err := s.store.GetUser(r.Context(), userID)
	if err != nil {
		return lookup(err, "user "+userID)
	}
	if err := s.store.DisableUser(r.Context(), u.ID, s.cfg.Now()); err != nil {
		return lookup(err, "user "+userID)
	}
	s.auth.tokens.Clear()
	closed := credConns.cutUser(u.ID, errUserDisabled)
	s.audit(store.AuditEvent{TenantID: u.TenantID, Actor: p.Actor, Action: "user.disable", Target: u.ID,
		Detail: fmt.Sprintf("%s; tunnels closed: %d", u.Email, closed)})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// setSuperadmin is POST /api/admin/users/{userId}/superadmin
// {"superadmin": true|false}: only the admin key makes or unmakes a
// superadmin (a superadmin cannot make another).
func (s *managementAPI) setSuperadmin(w http.ResponseWriter, r *http.Request, p Principal) error {
	userID := r.PathValue("userId")
	if !p.Admin || p.UserID != "" {
		return fmt.Errorf("%w: setting superadmin needs the admin key", errForbidden)
	}
	var in struct {
		Superadmin *bool `json:"superadmin"`
	}
	if err := readJSON(r, &in); err != nil {
		return err
	}
	if in.Superadmin == nil {
		return fmt.Errorf("%w: superadmin (true or false) is required", errBadRequest)
	}
	u, err := s.store.GetUser(r.Context(), userID)
	if err != nil {
		return lookup(err, "user "+userID)
	}
	if u.DisabledAt != nil {
		return fmt.Errorf("%w: user %s is disabled", store.ErrConflict, u.ID)
	}
	if err := s.store.SetUserSuperadmin(r.Context(), u.ID, *in.Superadmin); err != nil {
		return lookup(err, "user "+userID)
	}
	s.audit(store.AuditEvent{TenantID: u.TenantID, Actor: p.Actor, Action: "user.superadmin", Target: u.ID, Detail: fmt.Sprintf("superadmin: %v", *in.Superadmin)})
	writeJSON(w, http.StatusOK, map[string]any{"id": u.ID, "tenant_id": u.TenantID, "email": u.Email, "superadmin": *in.Superadmin})
	return nil
}

// listTenants is GET /api/admin/tenants: every tenant, for the admin key
// and superadmins (the console's tenant picker).
func (s *managementAPI) listTenants(w http.ResponseWriter, r *http.Request, p Principal) error {
	if !p.Admin && !s.isSuperadmin(r, p) {
		return fmt.Errorf("%w: listing tenants needs the admin key or a superadmin", errForbidden)
	}
	ts, err := s.store.ListTenants(r.Context())
	if err != nil {
		return err
	}
	items := make([]map[string]any, len(ts))
	for i, t := range ts {
		items[i] = map[string]any{"id": t.ID, "name": t.Name, "created_at": t.CreatedAt}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
	return nil
}

// isSuperadmin says whether p is a superadmin's (by any credential of
// theirs: a token or a session pinned to one tenant still lists them).
func (s *managementAPI) isSuperadmin(r *http.Request, p Principal) bool {
	if p.UserID == "" {
		return false
	}
	u, err := s.store.GetUser(r.Context(), p.UserID)
	return err == nil && u.Superadmin && u.DisabledAt == nil
}
