package relay

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/nanodems/connector/relay/secret"
	"github.com/nanodems/connector/relay/store"
)

// partnerSessions serves /api/v1/sessions to a partner's server that
// holds an nk_ key (X-API-Key): it mints an ops_ CLI session for one of
// the partner's operators, lists the tenant's sessions and revokes one by
// the hash of its token. A session it mints is an ordinary CLI session
// (expiry, sliding, hard cap, scope: cli_sessions.go) that records the
// key as its issuer. It depends on the store and the CLI edge (the run
// command a session comes with).
type partnerSessions struct {
	base
	cli *cliEdge
}

const (
	maxOperatorID   = 128 // bytes of an external_operator_id
	maxOperatorName = 200 // bytes of an operator_display_name
)

// errPartnerKey refuses an X-API-Key that is not a live nk_ key.
var errPartnerKey = fmt.Errorf("%w: X-API-Key is not a live nk_ partner key", errBadCredential)

// partnerAPI serves f to a caller with a live partner key, from an
// address its allowed_ip_cidr admits.
func (s *partnerSessions) partnerAPI(f func(w http.ResponseWriter, r *http.Request, k store.PartnerKey) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		k, err := s.partnerKey(r)
		if err == nil {
			err = f(w, r, k)
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	}
}

// partnerKey authenticates the caller's X-API-Key. A call from outside
// the key's allowed_ip_cidr is 403 with the reason, and audited: a
// leaked key tried from elsewhere is worth knowing about.
func (s *partnerSessions) partnerKey(r *http.Request) (store.PartnerKey, error) {
	plain := strings.TrimSpace(r.Header.Get("X-API-Key"))
	if plain == "" {
		return store.PartnerKey{}, fmt.Errorf("%w: send the partner key as X-API-Key: nk_…", errNoCredential)
	}
	if !secret.HasPrefix(plain, secret.PartnerKey) {
		return store.PartnerKey{}, errPartnerKey
	}
	k, err := s.store.GetPartnerKeyByHash(r.Context(), secret.Hash(plain))
	switch {
	case errors.Is(err, store.ErrNotFound), err == nil && k.RevokedAt != nil:
		return store.PartnerKey{}, errPartnerKey
	case err != nil:
		return store.PartnerKey{}, err
	}
	if k.AllowedCIDR == "" {
		return k, nil
	}
	pfx, err := netip.ParsePrefix(k.AllowedCIDR)
	if err != nil {
		return store.PartnerKey{}, fmt.Errorf("partner key %s: stored allowed_ip_cidr %q: %w", k.ID, k.AllowedCIDR, err)
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !pfx.Contains(ap.Addr().Unmap()) {
		from := r.RemoteAddr
		if err == nil {
			from = ap.Addr().Unmap().String()
		}
		s.audit(store.AuditEvent{TenantID: k.TenantID, Actor: "partner_key:" + k.ID, Action: "partner_key.refused_address",
			Target: k.ID, Detail: fmt.Sprintf("%s %s from %s, outside %s", r.Method, r.URL.Path, from, k.AllowedCIDR)})
		return store.PartnerKey{}, fmt.Errorf("%w: this partner key is accepted only from %s; the call came from %s", errForbidden, k.AllowedCIDR, from)
	}
	return k, nil
}

// createSession serves POST /api/v1/sessions: a fresh ops_ session for
// the partner's operator named in the body, over the sites in site_ids
// (all of the key's tenant), or every site of the tenant when it names
// none.
func (s *partnerSessions) createSession(w http.ResponseWriter, r *http.Request, k store.PartnerKey) error {
	var in struct {
		ExternalOperatorID  string   `json:"external_operator_id"`
		OperatorDisplayName string   `json:"operator_display_name"`
		SiteIDs             []string `json:"site_ids"`
	}
	if err := readJSON(r, &in); err != nil {
		return err
	}
	in.ExternalOperatorID = strings.TrimSpace(in.ExternalOperatorID)
	in.OperatorDisplayName = strings.TrimSpace(in.OperatorDisplayName)
	if in.ExternalOperatorID == "" || len(in.ExternalOperatorID) > maxOperatorID || strings.ContainsFunc(in.ExternalOperatorID, unicode.IsControl) {
		return fmt.Errorf("%w: external_operator_id needs 1 to %d bytes without control characters", errBadRequest, maxOperatorID)
	}
	if in.OperatorDisplayName == "" || len(in.OperatorDisplayName) > maxOperatorName || strings.ContainsFunc(in.OperatorDisplayName, unicode.IsControl) {
		return fmt.Errorf("%w: operator_display_name needs 1 to %d bytes without control characters", errBadRequest, maxOperatorName)
	}
	if len(in.SiteIDs) > maxCLISites {
		return fmt.Errorf("%w: site_ids names at most %d sites", errBadRequest, maxCLISites)
	}
	sites, err := s.sessionSites(r, k, in.SiteIDs)
	if err != nil {
		return err
	}
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	plain, hash := secret.New(secret.CLISession)
	c := store.CLISession{
		ID: newID("cli_"), Hash: hash, TenantID: k.TenantID, SiteIDs: sites, Label: in.OperatorDisplayName,
		CreatedAt: now, ExpiresAt: now.Add(cliSlide), HardCapAt: now.Add(cliHardCap),
		IssuerKeyID: k.ID, ExternalOperatorID: in.ExternalOperatorID, OperatorDisplayName: in.OperatorDisplayName,
	}
	if err := s.store.CreateCLISession(r.Context(), c); err != nil {
		return err
	}
	s.audit(store.AuditEvent{TenantID: k.TenantID, Actor: "partner_key:" + k.ID, Action: "cli_session.create", Target: c.ID,
		Detail: fmt.Sprintf("for operator %q (%q); sites %s", c.ExternalOperatorID, c.OperatorDisplayName, strings.Join(sites, ","))})
	cmd := fmt.Sprintf("nanodems-tunnel run --relay %s --token %s", s.publicAPIURL(r), plain)
	if s.cli.apiPin != "" {
		cmd += " --ca-pin " + s.cli.apiPin
	}
	out := partnerSessionJSON(c)
	out["token"], out["command"] = plain, cmd
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// sessionSites checks the sites a partner asked for (each of the key's
// tenant), or lists all of the tenant's when it asked for none.
func (s *partnerSessions) sessionSites(r *http.Request, k store.PartnerKey, ids []string) ([]string, error) {
	var sites []string
	if len(ids) > 0 {
		for _, id := range ids {
			if slices.Contains(sites, id) {
				continue
			}
			site, err := s.store.GetSite(r.Context(), id)
			if errors.Is(err, store.ErrNotFound) || (err == nil && site.TenantID != k.TenantID) {
				// Another tenant's site reads as unknown: the key learns
				// nothing of other tenants.
				return nil, lookup(store.ErrNotFound, "site "+id)
			}
			if err != nil {
				return nil, err
			}
			sites = append(sites, id)
		}
		return sites, nil
	}
	page := store.Page{Limit: store.MaxPageLimit}
	for {
		ss, next, err := s.store.ListSites(r.Context(), k.TenantID, page)
		if err != nil {
			return nil, err
		}
		for _, site := range ss {
			sites = append(sites, site.ID)
		}
		if next == "" {
			break
		}
		page.Cursor = next
	}
	if len(sites) == 0 {
		return nil, fmt.Errorf("%w: the key's tenant has no sites yet", store.ErrConflict)
	}
	return sites, nil
}

// partnerSessionJSON is a CLI session as /api/v1/sessions shows it: with
// the hex SHA-256 of its token, by which DELETE names it.
func partnerSessionJSON(c store.CLISession) map[string]any {
	out := cliSessionJSON(c)
	out["token_hash"] = hex.EncodeToString(c.Hash)
	out["issuer_key_id"] = c.IssuerKeyID
	out["external_operator_id"] = c.ExternalOperatorID
	out["operator_display_name"] = c.OperatorDisplayName
	return out
}

// listSessions serves GET /api/v1/sessions: the live CLI sessions of the
// key's tenant, newest first.
func (s *partnerSessions) listSessions(w http.ResponseWriter, r *http.Request, k store.PartnerKey) error {
	cs, err := s.store.ListTenantCLISessions(r.Context(), k.TenantID, s.cfg.Now())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sessionsJSON(cs, partnerSessionJSON))
	return nil
}

// revokeSession serves DELETE /api/v1/sessions/{tokenHash}: the session
// of the key's tenant whose token hashes to tokenHash stops working and
// what it opened here is cut (elsewhere through the change feed); its
// CLI exits on its next request.
func (s *partnerSessions) revokeSession(w http.ResponseWriter, r *http.Request, k store.PartnerKey) error {
	th := r.PathValue("tokenHash")
	hash, err := hex.DecodeString(th)
	if err != nil || len(hash) != 32 {
		return fmt.Errorf("%w: tokenHash is the hex SHA-256 of the ops_ token (64 hex digits)", errBadRequest)
	}
	c, err := s.store.GetCLISessionByHash(r.Context(), hash)
	if errors.Is(err, store.ErrNotFound) || (err == nil && c.TenantID != k.TenantID) {
		return lookup(store.ErrNotFound, "CLI session "+th)
	}
	if err != nil {
		return err
	}
	c, closed, err := s.endCLISession(r.Context(), c, "partner_key:"+k.ID)
	if err != nil {
		return err
	}
	out := partnerSessionJSON(c)
	out["revoked_at"], out["closed_connections"] = c.RevokedAt, closed
	writeJSON(w, http.StatusOK, out)
	return nil
}
