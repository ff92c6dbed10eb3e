package relay

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nanodems/connector/relay/license"
	"github.com/nanodems/connector/relay/secret"
	"github.com/nanodems/connector/relay/store"
)

// OpCon licenses (spec 002 §8, docs/api.md): an external operator console
// opens a tenant's tunnels with the tenant's license GUID, which the
// licensing application issues, rotates and revokes through the admin
// API. The GUID is shown once, when issued, and stored as its SHA-256;
// the tenant's people see each license's id, hint and dates, read-only.
// The license is the capability; the user id a console adds is audit
// metadata. This file holds the routes; the tunnel side is
// wsTunnels.licensePrincipal.

// errLicenseRevoked is the reason a revoked license's tunnels end with.
var errLicenseRevoked = fmt.Errorf("%w: license revoked", errBadCredential)

// newLicense mints a license of tenantID: the record to store and the
// GUID to hand out once.
func (s *managementAPI) newLicense(tenantID string) (store.License, string) {
	guid := license.New()
	return store.License{
		ID: newID("lic_"), Hash: secret.Hash(guid), Hint: guid[len(guid)-4:], TenantID: tenantID,
		CreatedAt: s.cfg.Now().UTC().Truncate(time.Microsecond),
	}, guid
}

// licenseJSON is a license as the API shows it: never its GUID, which
// only the answer that issues it carries.
func licenseJSON(l store.License) map[string]any {
	return map[string]any{"id": l.ID, "tenant_id": l.TenantID, "hint": l.Hint, "created_at": l.CreatedAt, "revoked_at": l.RevokedAt}
}

// createLicense serves POST /api/admin/tenants/{tenantId}/licenses: a new
// license for the tenant (rotation: the old one works until it is
// revoked, so consoles move over without a gap).
func (s *managementAPI) createLicense(w http.ResponseWriter, r *http.Request, p Principal) error {
	if !p.Admin {
		return fmt.Errorf("%w: licenses are issued with the admin key", errForbidden)
	}
	tenantID := r.PathValue("tenantId")
	if _, err := s.store.GetTenant(r.Context(), tenantID); err != nil {
		return lookup(err, "tenant "+tenantID)
	}
	l, guid := s.newLicense(tenantID)
	if err := s.store.CreateLicense(r.Context(), l); err != nil {
		return err
	}
	s.audit(store.AuditEvent{TenantID: tenantID, Actor: p.Actor, Action: "license.create", Target: l.ID, Detail: "hint " + l.Hint})
	out := licenseJSON(l)
	out["guid"] = guid
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// revokeLicense serves DELETE /api/admin/tenants/{tenantId}/licenses/{licenseId}:
// the license stops working and every tunnel it opened, on this relay and
// (through the store's change feed) on every other, is cut.
func (s *managementAPI) revokeLicense(w http.ResponseWriter, r *http.Request, p Principal) error {
	if !p.Admin {
		return fmt.Errorf("%w: licenses are revoked with the admin key", errForbidden)
	}
	tenantID, id := r.PathValue("tenantId"), r.PathValue("licenseId")
	l, err := s.store.GetLicense(r.Context(), id)
	if err != nil || l.TenantID != tenantID {
		return lookup(store.ErrNotFound, "license "+id+" of tenant "+tenantID)
	}
	if err := s.store.RevokeLicense(r.Context(), id, s.cfg.Now()); err != nil {
		return err
	}
	closed := credConns.cut(id, errLicenseRevoked)
	s.audit(store.AuditEvent{TenantID: tenantID, Actor: p.Actor, Action: "license.revoke", Target: id,
		Detail: fmt.Sprintf("hint %s; tunnels closed: %d", l.Hint, closed)})
	if l, err = s.store.GetLicense(r.Context(), id); err != nil {
		return err
	}
	out := licenseJSON(l)
	out["closed_tunnels"] = closed
	writeJSON(w, http.StatusOK, out)
	return nil
}

// listLicenses serves GET /api/tenants/{tenantId}/licenses: the tenant's
// licenses, revoked ones included, without their GUIDs (the console's
// read-only list).
func (s *managementAPI) listLicenses(w http.ResponseWriter, r *http.Request, p Principal) error {
	tenantID := r.PathValue("tenantId")
	if !p.canAccess(tenantID) {
		return fmt.Errorf("%w: tenant is not yours", errForbidden)
	}
	if _, err := s.store.GetTenant(r.Context(), tenantID); err != nil {
		return lookup(err, "tenant "+tenantID)
	}
	ls, err := s.store.ListLicenses(r.Context(), tenantID)
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(ls))
	for _, l := range ls {
		out = append(out, licenseJSON(l))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// licensePrincipal is the principal of a presented license: its tenant,
// with the license as the revocable credential. A malformed, unknown or
// revoked license is 401 with the reason.
func (s *authenticator) licensePrincipal(ctx context.Context, c license.Credential) (Principal, error) {
	l, err := s.store.GetLicenseByHash(ctx, secret.Hash(c.GUID))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Principal{}, fmt.Errorf("%w: unknown license", errBadCredential)
	case err != nil:
		return Principal{}, err
	case l.RevokedAt != nil:
		return Principal{}, errLicenseRevoked
	}
	return Principal{TenantID: l.TenantID, Actor: "license:" + l.ID, Cred: l.ID}, nil
}
