package relay

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nanodems/connector/relay/secret"
	"github.com/nanodems/connector/relay/store"
)

func (s *managementAPI) createTenant(w http.ResponseWriter, r *http.Request, p Principal) error {
	if !p.Admin {
		return fmt.Errorf("%w: creating tenants needs the admin key", errForbidden)
	}
	var in struct {
		Name string `json:"name"`
	}
	if err := readJSON(r, &in); err != nil {
		return err
	}
	if in.Name = strings.TrimSpace(in.Name); in.Name == "" {
		return fmt.Errorf("%w: name is required", errBadRequest)
	}
	t := store.Tenant{ID: newID("ten_"), Name: in.Name, CreatedAt: s.cfg.Now()}
	// The licensing application onboards a tenant with this call: the
	// tenant comes with its first OpCon license (licenses.go).
	l, guid := s.newLicense(t.ID)
	if err := s.store.CreateTenantLicensed(r.Context(), t, l); err != nil {
		return err
	}
	s.audit(store.AuditEvent{TenantID: t.ID, Actor: p.Actor, Action: "tenant.create", Target: t.ID, Detail: t.Name})
	s.audit(store.AuditEvent{TenantID: t.ID, Actor: p.Actor, Action: "license.create", Target: l.ID, Detail: "hint " + l.Hint})
	lj := licenseJSON(l)
	lj["guid"] = guid
	writeJSON(w, http.StatusCreated, map[string]any{"id": t.ID, "name": t.Name, "created_at": t.CreatedAt, "license": lj})
	return nil
}

func (s *managementAPI) createUser(w http.ResponseWriter, r *http.Request, p Principal) error {
	tenantID := r.PathValue("tenantId")
	if !p.Admin {
		return fmt.Errorf("%w: creating users needs the admin key", errForbidden)
	}
	if _, err := s.store.GetTenant(r.Context(), tenantID); err != nil {
		return lookup(err, "tenant "+tenantID)
	}
	var in struct {
		Email      string `json:"email"`
		Password   string `json:"password"`
		Superadmin bool   `json:"superadmin"`
	}
	if err := readJSON(r, &in); err != nil {
		return err
	}
	in.Email = strings.ToLower(strings.TrimSpace(in.Email))
	if !strings.Contains(in.Email, "@") {
		return fmt.Errorf("%w: email %q is not an address", errBadRequest, in.Email)
	}
	if len(in.Password) < 12 {
		return fmt.Errorf("%w: password must have at least 12 characters", errBadRequest)
	}
	u := store.User{ID: newID("usr_"), TenantID: tenantID, Email: in.Email, PasswordHash: hashPassword(in.Password), Superadmin: in.Superadmin, CreatedAt: s.cfg.Now()}
	if err := s.store.CreateUser(r.Context(), u); err != nil {
		return lookup(err, "user "+in.Email)
	}
	s.audit(store.AuditEvent{TenantID: tenantID, Actor: p.Actor, Action: "user.create", Target: u.ID, Detail: u.Email})
	writeJSON(w, http.StatusCreated, map[string]any{"id": u.ID, "tenant_id": u.TenantID, "email": u.Email, "superadmin": u.Superadmin, "created_at": u.CreatedAt})
	return nil
}

// createToken mints an nt_ API token for a user: by the admin key or by
// the user themself. The token is bound to the user's tenant and shown
// only in this response.
func (s *managementAPI) createToken(w http.ResponseWriter, r *http.Request, p Principal) error {
	userID := r.PathValue("userId")
	if !p.Admin && p.UserID != userID {
		return fmt.Errorf("%w: users mint their own tokens only", errForbidden)
	}
	u, err := s.store.GetUser(r.Context(), userID)
	if err != nil {
		return lookup(err, "user "+userID)
	}
	label, err := tokenLabel(r)
	if err != nil {
		return err
	}
	plain, hash := secret.New(secret.APIToken)
	t := store.APIToken{ID: newID("tok_"), UserID: u.ID, TenantID: u.TenantID, Hash: hash, Label: label, CreatedAt: s.cfg.Now()}
	if err := s.store.CreateAPIToken(r.Context(), t); err != nil {
		return err
	}
	s.audit(store.AuditEvent{TenantID: u.TenantID, Actor: p.Actor, Action: "token.create", Target: t.ID, Detail: "for " + u.ID})
	writeJSON(w, http.StatusCreated, map[string]any{"id": t.ID, "token": plain, "label": t.Label, "user_id": u.ID, "tenant_id": u.TenantID, "created_at": t.CreatedAt})
	return nil
}

func (s *managementAPI) revokeToken(w http.ResponseWriter, r *http.Request, p Principal) error {
	userID, tokenID := r.PathValue("userId"), r.PathValue("tokenId")
	if !p.Admin && p.UserID != userID {
		return fmt.Errorf("%w: users revoke their own tokens only", errForbidden)
	}
	t, err := s.store.GetAPIToken(r.Context(), tokenID)
	if err != nil || t.UserID != userID {
		return lookup(store.ErrNotFound, "token "+tokenID)
	}
	if err := s.store.RevokeAPIToken(r.Context(), tokenID, s.cfg.Now()); err != nil {
		return err
	}
	s.auth.tokens.Clear()
	// What the token opened (tunnels, /c/ requests) ends with it.
	closed := credConns.cut(tokenID, errTokenRevoked)
	s.audit(store.AuditEvent{TenantID: t.TenantID, Actor: p.Actor, Action: "token.revoke", Target: tokenID, Detail: fmt.Sprintf("tunnels closed: %d", closed)})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// siteFor loads a site and checks that p may act on it.
func (s *base) siteFor(r *http.Request, p Principal, siteID string) (store.Site, error) {
	site, err := s.store.GetSite(r.Context(), siteID)
	if err != nil {
		return site, lookup(err, "site "+siteID)
	}
	if !p.canAccess(site.TenantID) {
		return site, fmt.Errorf("%w: site does not belong to your tenant", errForbidden)
	}
	return site, nil
}

func (s *managementAPI) createSite(w http.ResponseWriter, r *http.Request, p Principal) error {
	tenantID := r.PathValue("tenantId")
	if !p.canAccess(tenantID) {
		return fmt.Errorf("%w: tenant is not yours", errForbidden)
	}
	if _, err := s.store.GetTenant(r.Context(), tenantID); err != nil {
		return lookup(err, "tenant "+tenantID)
	}
	var in struct {
		Name          string `json:"name"`
		AllowLoopback bool   `json:"allow_loopback"`
	}
	if err := readJSON(r, &in); err != nil {
		return err
	}
	if in.Name = strings.TrimSpace(in.Name); in.Name == "" {
		return fmt.Errorf("%w: name is required", errBadRequest)
	}
	site := store.Site{ID: newID("site_"), TenantID: tenantID, Name: in.Name, AllowLoopback: in.AllowLoopback, CreatedAt: s.cfg.Now()}
	if err := s.store.CreateSite(r.Context(), site); err != nil {
		return err
	}
	s.audit(store.AuditEvent{TenantID: tenantID, Actor: p.Actor, Action: "site.create", Target: site.ID, Detail: siteDetail(site)})
	out, err := s.mintEnrollment(r, site.ID)
	if err != nil {
		return err
	}
	for k, v := range siteJSON(site) {
		out[k] = v
	}
	delete(out, "created_at")
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// siteJSON is a site as the API shows it.
func siteJSON(site store.Site) map[string]any {
	return map[string]any{"id": site.ID, "tenant_id": site.TenantID, "name": site.Name, "allowlist_version": site.AllowlistVersion,
		"allow_loopback": site.AllowLoopback, "created_at": site.CreatedAt}
}

// siteDetail is the audit detail of a site's settings.
func siteDetail(site store.Site) string {
	if site.AllowLoopback {
		return site.Name + " (allow_loopback)"
	}
	return site.Name
}

func (s *managementAPI) getSite(w http.ResponseWriter, r *http.Request, p Principal) error {
	site, err := s.siteFor(r, p, r.PathValue("siteId"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, siteJSON(site))
	return nil
}

// patchSite edits a site's name and whether its devices may name local
// targets. Turning allow_loopback off does not touch existing devices: the
// next create or edit of one that names a local target is refused, and an
// agent without --allow-loopback refuses to dial it in any case.
func (s *managementAPI) patchSite(w http.ResponseWriter, r *http.Request, p Principal) error {
	site, err := s.siteFor(r, p, r.PathValue("siteId"))
	if err != nil {
		return err
	}
	var in struct {
		Name          *string `json:"name"`
		AllowLoopback *bool   `json:"allow_loopback"`
	}
	if err := readJSON(r, &in); err != nil {
		return err
	}
	if in.Name != nil {
		if site.Name = strings.TrimSpace(*in.Name); site.Name == "" {
			return fmt.Errorf("%w: name must not be empty", errBadRequest)
		}
	}
	if in.AllowLoopback != nil {
		site.AllowLoopback = *in.AllowLoopback
	}
	if err := s.store.UpdateSite(r.Context(), site); err != nil {
		return lookup(err, "site "+site.ID)
	}
	s.audit(store.AuditEvent{TenantID: site.TenantID, Actor: p.Actor, Action: "site.update", Target: site.ID, Detail: siteDetail(site)})
	writeJSON(w, http.StatusOK, siteJSON(site))
	return nil
}

func (s *managementAPI) createEnrollmentToken(w http.ResponseWriter, r *http.Request, p Principal) error {
	site, err := s.siteFor(r, p, r.PathValue("siteId"))
	if err != nil {
		return err
	}
	out, err := s.mintEnrollment(r, site.ID)
	if err != nil {
		return err
	}
	out["site_id"] = site.ID
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// mintEnrollment creates a one-shot enrollment token for a site and the
// ready-to-paste command that uses it.
func (s *managementAPI) mintEnrollment(r *http.Request, siteID string) (map[string]any, error) {
	plain, hash := secret.New(secret.Enrollment)
	exp := s.cfg.Now().Add(s.cfg.EnrollTTL)
	if err := s.store.CreateEnrollmentToken(r.Context(), store.EnrollmentToken{Hash: hash, SiteID: siteID, ExpiresAt: exp, CreatedAt: s.cfg.Now()}); err != nil {
		return nil, err
	}
	cmd := fmt.Sprintf("nanodems-agent enroll --relay %s --token %s", s.publicAPIURL(r), plain)
	if s.apiPin != "" {
		cmd += " --ca-pin " + s.apiPin
	}
	return map[string]any{
		"enrollment_token":      plain,
		"enrollment_expires_at": exp.UTC().Format(time.RFC3339),
		"ca_pin":                s.apiPin,
		"enroll_command":        cmd,
	}, nil
}

// publicAPIURL is the API URL as the caller reached it.
func (s *base) publicAPIURL(r *http.Request) string {
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	return scheme + "://" + r.Host
}
