package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/nanodems/connector/relay/secret"
	"github.com/nanodems/connector/relay/store"
)

// CLI sessions (spec 002 §7, docs/cli.md): an operator picks sites, the
// relay mints an ops_ token scoped to them, and nanodems-tunnel run uses it
// for its bind plan and its tunnels. This file holds the management routes
// and the session checks; cli_tunnel.go the plan and the tunnels.

// cliEdge serves the CLI: managing sessions (POST /api/cli/sessions,
// GET /api/sites/{siteId}/cli-sessions, DELETE /api/cli/sessions/{id};
// this file) and what a running nanodems-tunnel uses with its ops_ token
// (GET /api/cli/sessions/plan, /api/cli/raw-tunnel/{ip}/{port},
// /api/cli/mux; cli_tunnel.go). It depends on the store (sessions, the
// plan), the authenticator (who manages sessions), the resolver and the
// Dialer (a plan address becomes a handle, then a tunnel), and the
// relay's done channel, which ends the hijacked mux connections.
type cliEdge struct {
	base
	auth   *authenticator
	dialer Dialer
	routes resolver
	apiPin string          // "sha256:…" in the run command, "" when not pinned
	done   <-chan struct{} // closed when the relay shuts down
	drain  <-chan struct{} // closed when the relay starts draining
	live   *atomic.Int64   // mux connections up (connector_cli_sessions_live)
	// late says whether a raw connection from an address waited too long
	// for its TLS handshake, with the reason to refuse it (overload.go).
	late func(addr string) (reason string, late bool)
}

const (
	// cliSlide is how far every use pushes a session's expiry: an operator
	// who works every week never signs in again ...
	cliSlide = 30 * 24 * time.Hour
	// ... until cliHardCap after issue, the hard security boundary.
	cliHardCap = 180 * 24 * time.Hour
	// cliSlideStep is how stale the stored expiry and last use may get: a
	// CLI that opens many connections a second costs one store write a
	// minute, not one per connection. An expiry 30 days out, and a "last
	// used" column, do not care about the minute.
	cliSlideStep = time.Minute
	// cliRefreshSeconds is the plan refresh the relay asks CLIs for.
	cliRefreshSeconds = 60
	// cliRecheck is how often a live mux connection re-reads its session,
	// so a revocation made on another relay, or the hard cap passing while
	// the CLI stays connected, still ends it.
	cliRecheck = time.Minute

	maxCLISites = 100 // sites in one session
	maxCLILabel = 200 // bytes of a session label
)

// cliAuthError is a refused ops_ session. It answers 401 (it Is
// errBadCredential for HTTPStatus) with exactly its text, which the CLI
// prints as the reason it exits.
type cliAuthError string

func (e cliAuthError) Error() string        { return string(e) }
func (e cliAuthError) Is(target error) bool { return target == errBadCredential }

var (
	errCLIRevoked = cliAuthError("CLI session revoked")
	errCLIExpired = cliAuthError("CLI session expired; issue a new one")
)

// scopeError refuses a CLI target outside the session's sites: 403 with
// the address, so the operator sees which tuple was refused.
type scopeError struct {
	ip   string
	port int
}

func (e scopeError) Error() string {
	return net.JoinHostPort(e.ip, strconv.Itoa(e.port)) + " is not in this session's scope"
}
func (e scopeError) Is(target error) bool { return target == errForbidden }

// cliManager authenticates a call that manages CLI sessions: the API's
// credentials (admin key, nt_ token, Basic), or else a signed-in browser,
// because minting a session is a button on the site page (spec 002 §7).
// A browser's unsafe request must also carry the session's antiforgery
// token in X-CSRF-Token: the SameSite=Lax cookie alone would let any page
// of the same site (a camera UI in subdomain mode) mint or revoke sessions.
// An ops_ token never manages sessions: authenticate accepts only nt_.
func (s *cliEdge) cliManager(r *http.Request) (Principal, error) {
	if p, ok := consolePrincipal(r); ok {
		return p, nil
	}
	if r.Header.Get("X-Admin-Api-Key") != "" || r.Header.Get("Authorization") != "" {
		return s.auth.authenticate(r)
	}
	p, ss, ok := s.auth.sessionPrincipal(r)
	if !ok {
		return Principal{}, errNoCredential
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !equal(ss.CSRF, r.Header.Get("X-CSRF-Token")) {
		return Principal{}, fmt.Errorf("%w: a signed-in request must carry its X-CSRF-Token", errForbidden)
	}
	return p, nil
}

// cliAPI is api with cliManager's authentication.
func (s *cliEdge) cliAPI(f apiFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.cliManager(r)
		if err == nil {
			err = f(w, r, p)
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	}
}

// createCLISession serves POST /api/cli/sessions: a new ops_ token for the
// sites in the body, shown only in this answer with the command that
// uses it.
func (s *cliEdge) createCLISession(w http.ResponseWriter, r *http.Request, p Principal) error {
	var in struct {
		SiteIDs []string `json:"site_ids"`
		Label   string   `json:"label"`
	}
	if err := readJSON(r, &in); err != nil {
		return err
	}
	if len(in.SiteIDs) == 0 || len(in.SiteIDs) > maxCLISites {
		return fmt.Errorf("%w: site_ids needs 1 to %d sites", errBadRequest, maxCLISites)
	}
	in.Label = strings.TrimSpace(in.Label)
	if len(in.Label) > maxCLILabel || strings.ContainsFunc(in.Label, unicode.IsControl) {
		return fmt.Errorf("%w: label must be at most %d bytes without control characters", errBadRequest, maxCLILabel)
	}
	var sites []string
	tenantID := ""
	for _, id := range in.SiteIDs {
		if slices.Contains(sites, id) {
			continue
		}
		site, err := s.siteFor(r, p, id)
		if err != nil {
			return err
		}
		// A session acts in one tenant, like a token; an admin picking
		// sites of two tenants gets two sessions.
		if tenantID != "" && site.TenantID != tenantID {
			return fmt.Errorf("%w: all sites of a CLI session must belong to one tenant", errBadRequest)
		}
		tenantID = site.TenantID
		sites = append(sites, id)
	}
	// The store keeps microseconds; answer with the times as stored.
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	plain, hash := secret.New(secret.CLISession)
	c := store.CLISession{
		ID: newID("cli_"), Hash: hash, TenantID: tenantID, UserID: p.UserID, SiteIDs: sites, Label: in.Label,
		CreatedAt: now, ExpiresAt: now.Add(cliSlide), HardCapAt: now.Add(cliHardCap),
	}
	if err := s.store.CreateCLISession(r.Context(), c); err != nil {
		return err
	}
	s.audit(store.AuditEvent{TenantID: tenantID, Actor: p.Actor, Action: "cli_session.create", Target: c.ID,
		Detail: fmt.Sprintf("sites %s label %q", strings.Join(sites, ","), c.Label)})
	cmd := fmt.Sprintf("nanodems-tunnel run --relay %s --token %s", s.publicAPIURL(r), plain)
	if s.apiPin != "" {
		cmd += " --ca-pin " + s.apiPin
	}
	out := cliSessionJSON(c)
	out["token"], out["command"] = plain, cmd
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// cliSessionJSON is a session as the API shows it: never the token or
// its hash.
func cliSessionJSON(c store.CLISession) map[string]any {
	return map[string]any{
		"id": c.ID, "tenant_id": c.TenantID, "user_id": c.UserID, "site_ids": c.SiteIDs, "label": c.Label,
		"created_at": c.CreatedAt, "expires_at": c.ExpiresAt, "hard_cap_at": c.HardCapAt, "last_used_at": c.LastUsedAt,
	}
}

// listCLISessions serves GET /api/sites/{siteId}/cli-sessions: the site's
// "Active sessions", with the connections each has open on this relay.
func (s *cliEdge) listCLISessions(w http.ResponseWriter, r *http.Request, p Principal) error {
	site, err := s.siteFor(r, p, r.PathValue("siteId"))
	if err != nil {
		return err
	}
	cs, err := s.store.ListCLISessions(r.Context(), site.ID, s.cfg.Now())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sessionsJSON(cs, cliSessionJSON))
	return nil
}

// sessionsJSON is a list of CLI sessions as show draws each, with the
// connections each has open on this relay. The site's Active sessions
// and a partner's GET /api/v1/sessions list with it.
func sessionsJSON(cs []store.CLISession, show func(store.CLISession) map[string]any) []map[string]any {
	out := make([]map[string]any, 0, len(cs))
	for _, c := range cs {
		j := show(c)
		j["connections"] = credConns.count(c.ID)
		out = append(out, j)
	}
	return out
}

// revokeCLISession serves DELETE /api/cli/sessions/{id}: the token stops
// working, and every connection the session has open here is cut at once,
// so the running CLI learns on its next request and exits.
func (s *cliEdge) revokeCLISession(w http.ResponseWriter, r *http.Request, p Principal) error {
	id := r.PathValue("id")
	c, err := s.store.GetCLISession(r.Context(), id)
	if err != nil {
		return lookup(err, "CLI session "+id)
	}
	if !p.canAccess(c.TenantID) {
		return fmt.Errorf("%w: CLI session does not belong to your tenant", errForbidden)
	}
	c, closed, err := s.endCLISession(r.Context(), c, p.Actor)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "revoked_at": c.RevokedAt, "closed_connections": closed})
	return nil
}

// endCLISession revokes CLI session c for actor: the token stops
// working, what it opened here is cut (elsewhere through the change
// feed), and the revocation is audited. It returns the session as stored
// afterwards and how many connections it closed. A user's DELETE and a
// partner's DELETE /api/v1/sessions/{tokenHash} both revoke with it.
func (s *base) endCLISession(ctx context.Context, c store.CLISession, actor string) (store.CLISession, int, error) {
	if err := s.store.RevokeCLISession(ctx, c.ID, s.cfg.Now()); err != nil {
		return c, 0, err
	}
	closed := credConns.cut(c.ID, errCLIRevoked)
	s.audit(store.AuditEvent{TenantID: c.TenantID, Actor: actor, Action: "cli_session.revoke", Target: c.ID,
		Detail: fmt.Sprintf("connections closed: %d", closed)})
	c, err := s.store.GetCLISession(ctx, c.ID)
	return c, closed, err
}

// cliSession authenticates a CLI by its Bearer ops_ token, checks that the
// session is live, and counts the request as a use (it slides).
func (s *cliEdge) cliSession(r *http.Request) (store.CLISession, error) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return store.CLISession{}, errNoCredential
	}
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		return store.CLISession{}, errBadCredential
	}
	return s.cliSessionByToken(r.Context(), strings.TrimSpace(tok))
}

// cliSessionByToken is cliSession for a token presented some other way
// (the raw transport's hello, cli_raw.go).
func (s *cliEdge) cliSessionByToken(ctx context.Context, tok string) (store.CLISession, error) {
	if !secret.HasPrefix(tok, secret.CLISession) {
		return store.CLISession{}, errBadCredential
	}
	c, err := s.store.GetCLISessionByHash(ctx, secret.Hash(tok))
	if errors.Is(err, store.ErrNotFound) {
		return c, errBadCredential
	}
	if err != nil {
		return c, err
	}
	return s.useCLISession(ctx, c)
}

// useCLISession refuses a revoked or expired session and otherwise slides
// its expiry to now+cliSlide (capped) and records the use, writing only
// when either has moved by cliSlideStep. The store re-checks in the write,
// so a revocation racing with a use wins.
func (s *cliEdge) useCLISession(ctx context.Context, c store.CLISession) (store.CLISession, error) {
	now := s.cfg.Now()
	if err := cliLive(ctx, s.store, c, now); err != nil {
		return c, err
	}
	want := now.Add(cliSlide)
	if want.After(c.HardCapAt) {
		want = c.HardCapAt
	}
	if want.Sub(c.ExpiresAt) < cliSlideStep && c.LastUsedAt != nil && now.Sub(*c.LastUsedAt) < cliSlideStep {
		return c, nil
	}
	c, err := s.store.TouchCLISession(ctx, c.ID, now, want)
	switch {
	case errors.Is(err, store.ErrRevoked):
		return c, sessionRevoked(ctx, s.store, c)
	case errors.Is(err, store.ErrExpired):
		return c, errCLIExpired
	case errors.Is(err, store.ErrNotFound):
		return c, errBadCredential
	}
	return c, err
}

// cliLive says why c cannot be used at now, or nil.
func cliLive(ctx context.Context, st store.Store, c store.CLISession, now time.Time) error {
	switch {
	case c.RevokedAt != nil:
		return sessionRevoked(ctx, st, c)
	case !now.Before(c.ExpiresAt), !now.Before(c.HardCapAt):
		return errCLIExpired
	}
	return nil
}
