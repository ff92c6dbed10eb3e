package relay

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/nanodems/connector/relay/license"
	"github.com/nanodems/connector/relay/secret"
)

// tunnelCaller is who opens a WebSocket tunnel, with what the credential
// adds to the principal: the license it presented, or the sites a CLI
// session is scoped to.
type tunnelCaller struct {
	p     Principal
	lic   *license.Credential // an OpCon license: audited per tunnel, its subprotocol echoed
	sites []string            // an ops_ session's sites; nil: the tenant's
}

// caller authenticates a tunnel's opener, in this order: an OpCon license
// (subprotocol, else X-License), the signed-in browser's cookie, an ops_
// CLI session (Authorization: Bearer ops_…), else the API's credentials
// (admin key, nt_ token, Basic).
func (s *wsTunnels) caller(r *http.Request) (tunnelCaller, error) {
	lic, ok, err := license.FromSubprotocols(r.Header.Values("Sec-WebSocket-Protocol"))
	if !ok && err == nil && r.Header.Get("X-License") != "" {
		lic, err = license.FromHeaders(r.Header.Get("X-License"), r.Header.Get("X-User-Id"))
		ok = true
	}
	if err != nil {
		return tunnelCaller{}, fmt.Errorf("%w: %w", errBadCredential, err)
	}
	if ok {
		p, err := s.auth.licensePrincipal(r.Context(), lic)
		if err != nil {
			return tunnelCaller{}, err
		}
		return tunnelCaller{p: p, lic: &lic}, nil
	}
	if p, _, ok := s.auth.sessionPrincipal(r); ok {
		return tunnelCaller{p: p}, nil
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && secret.HasPrefix(strings.TrimSpace(tok), secret.CLISession) {
		c, err := s.cli.cliSession(r)
		if err != nil {
			return tunnelCaller{}, err
		}
		p := Principal{TenantID: c.TenantID, UserID: c.UserID, Actor: "cli_session:" + c.ID, Cred: c.ID}
		return tunnelCaller{p: p, sites: c.SiteIDs}, nil
	}
	p, err := s.auth.authenticate(r)
	return tunnelCaller{p: p}, err
}

// inSessionSites refuses a handle of the session's tenant outside its
// sites (403, like the CLI's own routes); other refusals are Dial's.
func (s *wsTunnels) inSessionSites(r *http.Request, p Principal, h string, sites []string) error {
	route, err := s.routes.route(r.Context(), p, h)
	if err != nil {
		if errors.Is(err, ErrUnknownHandle) || errors.Is(err, ErrOtherTenant) {
			return err
		}
		return nil // Dial answers it
	}
	if !slices.Contains(sites, route.SiteID) {
		return fmt.Errorf("%w: handle %s is not in this CLI session's sites", errForbidden, h)
	}
	return nil
}
