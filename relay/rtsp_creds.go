package relay

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nanodems/connector/relay/secret"
	"github.com/nanodems/connector/relay/store"
	"github.com/nanodems/connector/rtsp"
)

// RTSP credentials (docs/rtsp.md): URLs a VMS can keep. A grant URL
// expires within 30 days; a VMS that records for months would have to be
// given new URLs every month. A credential is a user and secret of one
// integration, scoped to a tenant or one of its sites, that the VMS puts
// in a plain rtsp://user:secret@relay:9554/{handle}/… URL; the gateway
// checks it with Digest before it dials anything. It does not expire
// unless asked to, and revoking it ends the sessions it opened.
//
// Digest needs, to check a response, either the secret or HA1 =
// MD5(user:realm:secret); the store keeps only HA1 for the gateway's fixed
// realm (rtsp.DigestRealm). The secret has 256 random bits, so HA1 is no
// easier to reverse than a hash of it.

// errRTSPCredRevoked ends the RTSP sessions of a revoked credential.
var errRTSPCredRevoked = fmt.Errorf("%w: RTSP credential revoked", errBadCredential)

// rtspCredPrefix starts every credential id, which is also its Digest
// user name: credRevoked tells credentials apart by it.
const rtspCredPrefix = "rc_"

// rtspCredJSON is a credential as the API shows it (never its secret).
func rtspCredJSON(c store.RTSPCredential) map[string]any {
	j := map[string]any{"id": c.ID, "user": c.ID, "name": c.Name, "tenant_id": c.TenantID, "site_id": c.SiteID,
		"created_at": c.CreatedAt, "expires_at": nil}
	if c.ExpiresAt != nil {
		j["expires_at"] = c.ExpiresAt
	}
	return j
}

// createRTSPCredential serves POST /api/tenants/{tenantId}/rtsp-credentials
// {"name": "Milestone at HQ", "site_id": "site_…", "expires_at": "…"}
// (site_id and expires_at optional): the user and secret, shown once.
func (s *rtspGateway) createRTSPCredential(w http.ResponseWriter, r *http.Request, p Principal) error {
	tenantID := r.PathValue("tenantId")
	if !p.canAccess(tenantID) {
		return fmt.Errorf("%w: tenant is not yours", errForbidden)
	}
	if _, err := s.store.GetTenant(r.Context(), tenantID); err != nil {
		return lookup(err, "tenant "+tenantID)
	}
	var in struct {
		Name      string     `json:"name"`
		SiteID    string     `json:"site_id"`
		ExpiresAt *time.Time `json:"expires_at"`
	}
	if err := readJSON(r, &in); err != nil {
		return err
	}
	in.Name = strings.TrimSpace(in.Name)
	if in.Name == "" || len(in.Name) > 200 || strings.ContainsAny(in.Name, "\r\n") {
		return fmt.Errorf("%w: name is required: one line, at most 200 characters", errBadRequest)
	}
	if in.SiteID != "" {
		site, err := s.store.GetSite(r.Context(), in.SiteID)
		if err != nil || site.TenantID != tenantID {
			// Another tenant's site is as unknown as a site that does not
			// exist: its id says nothing here.
			return lookup(store.ErrNotFound, "site "+in.SiteID)
		}
	}
	now := s.cfg.Now()
	if in.ExpiresAt != nil && !in.ExpiresAt.After(now) {
		return fmt.Errorf("%w: expires_at must be in the future (or absent: no expiry)", errBadRequest)
	}
	id := newID(rtspCredPrefix)
	plain, _ := secret.New(secret.RTSPSecret)
	c := store.RTSPCredential{ID: id, TenantID: tenantID, SiteID: in.SiteID, Name: in.Name, HA1: rtsp.HA1(id, plain),
		CreatedBy: p.Actor, CreatedAt: now.Truncate(time.Microsecond)}
	if in.ExpiresAt != nil {
		e := in.ExpiresAt.UTC().Truncate(time.Microsecond)
		c.ExpiresAt = &e
	}
	if err := s.store.CreateRTSPCredential(r.Context(), c); err != nil {
		return err
	}
	detail := in.Name
	if c.SiteID != "" {
		detail += ", site " + c.SiteID
	}
	s.audit(store.AuditEvent{TenantID: tenantID, Actor: p.Actor, Action: "rtsp_credential.create", Target: id, Detail: detail})
	j := rtspCredJSON(c)
	j["secret"] = plain
	if s.rtsp != nil {
		// What the VMS is given, once a camera's handle and path are in.
		j["url_template"] = "rtsp://" + url.UserPassword(id, plain).String() + "@" + s.rtspHost(r, s.rtsp.Addr()) + "/{handle}/"
	}
	writeJSON(w, http.StatusCreated, j)
	return nil
}

// listRTSPCredentials serves GET /api/tenants/{tenantId}/rtsp-credentials:
// the tenant's credentials that are not revoked.
func (s *rtspGateway) listRTSPCredentials(w http.ResponseWriter, r *http.Request, p Principal) error {
	tenantID := r.PathValue("tenantId")
	if !p.canAccess(tenantID) {
		return fmt.Errorf("%w: tenant is not yours", errForbidden)
	}
	cs, err := s.store.ListRTSPCredentials(r.Context(), tenantID)
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(cs))
	for _, c := range cs {
		out = append(out, rtspCredJSON(c))
	}
	writeJSON(w, http.StatusOK, map[string]any{"credentials": out})
	return nil
}

// revokeRTSPCredential serves DELETE
// /api/tenants/{tenantId}/rtsp-credentials/{id}: the credential opens
// nothing more, and the RTSP connections it opened end now.
func (s *rtspGateway) revokeRTSPCredential(w http.ResponseWriter, r *http.Request, p Principal) error {
	tenantID, id := r.PathValue("tenantId"), r.PathValue("id")
	if !p.canAccess(tenantID) {
		return fmt.Errorf("%w: tenant is not yours", errForbidden)
	}
	c, err := s.store.GetRTSPCredential(r.Context(), id)
	if err != nil || c.TenantID != tenantID || c.RevokedAt != nil {
		return lookup(store.ErrNotFound, "RTSP credential "+id)
	}
	if err := s.store.RevokeRTSPCredential(r.Context(), id, s.cfg.Now()); err != nil {
		return err
	}
	closed := credConns.cut(id, errRTSPCredRevoked)
	s.audit(store.AuditEvent{TenantID: tenantID, Actor: p.Actor, Action: "rtsp_credential.revoke", Target: id,
		Detail: fmt.Sprintf("%s; sessions closed: %d", c.Name, closed)})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

var _ rtsp.DigestBackend = rtspBackend{}

// AuthorizeDigest checks a Digest login of the gateway against the
// credential named user, then that the handle is in its scope. Nothing is
// dialed here: a wrong secret never reaches an agent.
func (b rtspBackend) AuthorizeDigest(ctx context.Context, h, user string, check func(ha1 string) bool) (rtsp.Principal, error) {
	select {
	case <-b.s.drain:
		return rtsp.Principal{}, rtsp.Errorf(503, "relay draining; connect to another relay")
	default:
	}
	// One answer for every failed login, whatever failed: the 401 must
	// not tell a guesser which user names exist.
	refused := rtsp.Errorf(401, "RTSP credential unknown, revoked, expired or wrong secret")
	if !strings.HasPrefix(user, rtspCredPrefix) || len(user) > 64 {
		return rtsp.Principal{}, refused
	}
	c, err := b.s.store.GetRTSPCredential(ctx, user)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return rtsp.Principal{}, refused
	case err != nil:
		b.s.log.Error("rtsp: credential lookup", "user", user, "err", err)
		return rtsp.Principal{}, rtsp.Errorf(503, "credential store unavailable; try again")
	}
	if c.RevokedAt != nil || (c.ExpiresAt != nil && !b.s.cfg.Now().Before(*c.ExpiresAt)) || !check(c.HA1) {
		return rtsp.Principal{}, refused
	}
	route, err := b.s.routes.resolve(ctx, h)
	if err != nil {
		return rtsp.Principal{}, rtspError(err)
	}
	if route.TenantID != c.TenantID {
		return rtsp.Principal{}, rtspError(ErrOtherTenant)
	}
	if c.SiteID != "" && route.SiteID != c.SiteID {
		return rtsp.Principal{}, rtsp.Errorf(403, "handle is not in this RTSP credential's site")
	}
	p := rtsp.Principal{Tenant: c.TenantID, Subject: "rtsp_credential:" + c.ID, Cred: c.ID}
	if c.ExpiresAt != nil {
		p.Expires = *c.ExpiresAt
	}
	return p, nil
}
