package relay

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"unicode"

	"github.com/nanodems/connector/relay/secret"
	"github.com/nanodems/connector/relay/store"
)

// Partner keys (nk_…, spec 002 §8, docs/api.md): a cloud admin issues one
// per tenant to a partner's server (NDIS production, build scripts), which
// mints per-operator CLI sessions with it (partner_sessions.go). A key may
// be pinned to the network it is used from. Revoking it revokes every
// session it issued and cuts what they opened. This file holds the admin
// key's routes.

// errPartnerKeyRevoked is the reason the connections of a session whose
// partner key was revoked end with, and the refusal of its later
// requests, on every relay; the CLI prints it as it exits. It names the
// key, not the session: an operator told "CLI session revoked" asks the
// partner for a new session, and the partner's key is what is gone.
var errPartnerKeyRevoked = cliAuthError("partner key revoked: the CLI sessions it issued are revoked with it")

// sessionRevoked is why revoked session c is refused: its partner key's
// revocation if that is what revoked it (the key's revoked_at is the
// session's, or earlier when c was read before the write), else
// errCLIRevoked. It reads the key only for a session a key issued, and
// only on the way to a refusal.
func sessionRevoked(ctx context.Context, st store.Store, c store.CLISession) error {
	if c.IssuerKeyID == "" {
		return errCLIRevoked
	}
	k, err := st.GetPartnerKey(ctx, c.IssuerKeyID)
	if err == nil && k.RevokedAt != nil && (c.RevokedAt == nil || !k.RevokedAt.After(*c.RevokedAt)) {
		return errPartnerKeyRevoked
	}
	return errCLIRevoked
}

const maxPartnerKeyLabel = 200 // bytes of a key's label

// partnerKeyJSON is a key as the API shows it: never the key or its hash.
func partnerKeyJSON(k store.PartnerKey) map[string]any {
	return map[string]any{"id": k.ID, "tenant_id": k.TenantID, "label": k.Label, "allowed_ip_cidr": k.AllowedCIDR,
		"created_at": k.CreatedAt, "revoked_at": k.RevokedAt}
}

// createPartnerKey serves POST /api/admin/tenants/{tenantId}/partner-keys:
// a new nk_ key, shown only in this answer, optionally pinned to
// allowed_ip_cidr.
func (s *managementAPI) createPartnerKey(w http.ResponseWriter, r *http.Request, p Principal) error {
	if !p.Admin {
		return fmt.Errorf("%w: partner keys are issued with the admin key", errForbidden)
	}
	tenantID := r.PathValue("tenantId")
	var in struct {
		Label         string `json:"label"`
		AllowedIPCIDR string `json:"allowed_ip_cidr"`
	}
	if err := readJSON(r, &in); err != nil {
		return err
	}
	in.Label = strings.TrimSpace(in.Label)
	if len(in.Label) > maxPartnerKeyLabel || strings.ContainsFunc(in.Label, unicode.IsControl) {
		return fmt.Errorf("%w: label must be at most %d bytes without control characters", errBadRequest, maxPartnerKeyLabel)
	}
	cidr := ""
	if in.AllowedIPCIDR = strings.TrimSpace(in.AllowedIPCIDR); in.AllowedIPCIDR != "" {
		pfx, err := netip.ParsePrefix(in.AllowedIPCIDR)
		if err != nil {
			return fmt.Errorf("%w: allowed_ip_cidr %q is not a CIDR like 203.0.113.0/24", errBadRequest, in.AllowedIPCIDR)
		}
		cidr = pfx.Masked().String()
	}
	if _, err := s.store.GetTenant(r.Context(), tenantID); err != nil {
		return lookup(err, "tenant "+tenantID)
	}
	plain, hash := secret.New(secret.PartnerKey)
	k := store.PartnerKey{ID: newID("pkey_"), Hash: hash, TenantID: tenantID, Label: in.Label, AllowedCIDR: cidr, CreatedAt: s.cfg.Now().UTC()}
	if err := s.store.CreatePartnerKey(r.Context(), k); err != nil {
		return err
	}
	detail := fmt.Sprintf("label %q", k.Label)
	if cidr != "" {
		detail += " from " + cidr
	}
	s.audit(store.AuditEvent{TenantID: tenantID, Actor: p.Actor, Action: "partner_key.create", Target: k.ID, Detail: detail})
	out := partnerKeyJSON(k)
	out["key"] = plain
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// listPartnerKeys serves GET /api/admin/tenants/{tenantId}/partner-keys.
func (s *managementAPI) listPartnerKeys(w http.ResponseWriter, r *http.Request, p Principal) error {
	if !p.Admin {
		return fmt.Errorf("%w: partner keys are listed with the admin key", errForbidden)
	}
	tenantID := r.PathValue("tenantId")
	if _, err := s.store.GetTenant(r.Context(), tenantID); err != nil {
		return lookup(err, "tenant "+tenantID)
	}
	ks, err := s.store.ListPartnerKeys(r.Context(), tenantID)
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(ks))
	for _, k := range ks {
		out = append(out, partnerKeyJSON(k))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// revokePartnerKey serves DELETE /api/admin/tenants/{tenantId}/partner-keys/{keyId}:
// the key and every session it issued stop working, and what those
// sessions opened is cut, here and (through the store's change feed) on
// every other relay; a running CLI of such a session exits.
func (s *managementAPI) revokePartnerKey(w http.ResponseWriter, r *http.Request, p Principal) error {
	if !p.Admin {
		return fmt.Errorf("%w: partner keys are revoked with the admin key", errForbidden)
	}
	tenantID, id := r.PathValue("tenantId"), r.PathValue("keyId")
	k, err := s.store.GetPartnerKey(r.Context(), id)
	if err != nil || k.TenantID != tenantID {
		return lookup(store.ErrNotFound, "partner key "+id+" of tenant "+tenantID)
	}
	sessions, err := s.store.RevokePartnerKey(r.Context(), id, s.cfg.Now())
	if err != nil {
		return err
	}
	closed := 0
	for _, sid := range sessions {
		closed += credConns.cut(sid, errPartnerKeyRevoked)
	}
	s.audit(store.AuditEvent{TenantID: tenantID, Actor: p.Actor, Action: "partner_key.revoke", Target: id,
		Detail: fmt.Sprintf("sessions revoked: %d (%s); connections closed: %d", len(sessions), strings.Join(sessions, ","), closed)})
	if k, err = s.store.GetPartnerKey(r.Context(), id); err != nil {
		return err
	}
	out := partnerKeyJSON(k)
	out["revoked_sessions"], out["closed_connections"] = len(sessions), closed
	writeJSON(w, http.StatusOK, out)
	return nil
}
