package relay

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nanodems/connector/relay/store"
)

// Relays that share a database act on each other's changes. A relay that
// revokes something or changes a device acts at once on what it holds
// (the API handlers call kick, credConns.cut, afterDeviceChange); the
// store carries the same change to every other relay on the database
// (store.Change, sent in the write's transaction), and followChanges
// makes each of them do what the writing relay did, on the caches,
// agents and tunnels it holds. A store does not hand a relay its own
// changes, so a lone relay behaves exactly as it does without the feed.

// followChanges applies the store's changes until the relay closes.
func (s *Server) followChanges(ctx context.Context) {
	ch := s.store.Changes(ctx)
	for {
		select {
		case <-s.done:
			return
		case c, ok := <-ch:
			if !ok {
				return
			}
			s.applyChange(ctx, c)
		}
	}
}

// applyChange does here what the relay that made c did where it runs.
func (s *Server) applyChange(ctx context.Context, c store.Change) {
	s.log.Debug("change from another relay", "kind", c.Kind, "id", c.ID)
	switch c.Kind {
	case store.ChangeAgentRevoked:
		s.kick(c.ID)
	case store.ChangeTokenRevoked:
		s.auth.tokens.Clear()
		s.cutHere(c.ID, "", errTokenRevoked)
	case store.ChangeCLISessionRevoked:
		reason := errCLIRevoked
		if c.By != "" {
			reason = errPartnerKeyRevoked
		}
		s.cutHere(c.ID, "", reason)
	case store.ChangeLicenseRevoked:
		s.cutHere(c.ID, "", errLicenseRevoked)
	case store.ChangePartnerKeyRevoked:
		// Its sessions come each with its own ChangeCLISessionRevoked; the
		// key itself opens nothing.
	case store.ChangeSessionEnded:
		s.cutHere("session:"+c.ID, "", errSignedOut)
	case store.ChangeRTSPCredentialRevoked:
		s.cutHere(c.ID, "", errRTSPCredRevoked)
	case store.ChangeUserDisabled:
		s.auth.tokens.Clear()
		s.cutHere("", c.ID, errUserDisabled)
	case store.ChangeHandleRevoked:
		s.invalidateRoutes()
		s.cutRevoked(ctx)
	case store.ChangeHandlePinned:
		s.routes.Delete(c.ID)
	case store.ChangeDevice:
		site, err := s.store.GetSite(ctx, c.SiteID)
		if err != nil {
			s.log.Error("change from another relay: device's site", "device", c.ID, "site", c.SiteID, "err", err)
			s.invalidateRoutes()
			s.cutRevoked(ctx)
			return
		}
		s.afterDeviceChange(ctx, site, c.ID)
	case store.ChangeDeviceCredentials:
		s.sealer.forgetCreds(c.ID)
		s.browser.web.forgetAuth(c.ID)
	case store.ChangeSite:
		// A site's name and AllowLoopback are read from the store when
		// used; nothing of them is cached.
	case store.ChangeResync:
		s.resync(ctx)
	default:
		s.log.Warn("change from another relay of an unknown kind; resyncing", "kind", c.Kind)
		s.resync(ctx)
	}
}

// cutHere cuts, on this relay, the uses of credential cred (or of every
// credential of user userID) that another relay revoked, and audits what
// it cut: the revoking relay's own row counts only its own tunnels.
func (s *Server) cutHere(cred, userID string, reason error) {
	n, tenants := credConns.cutUses(cred, userID, reason)
	if n == 0 {
		return
	}
	target := cred
	if cred == "" {
		target = userCred(userID)
	}
	for tenant, k := range tenants {
		s.mgmt.audit(store.AuditEvent{TenantID: tenant, Actor: "relay:" + s.cfg.NodeName, Action: "credential.cut", Target: target,
			Detail: fmt.Sprintf("tunnels closed: %d (%v, revoked on another relay)", k, reason)})
	}
}

// resync makes up for changes that may have been lost: it drops every
// cache and checks what this relay holds (agents, tunnels, credential
// uses) against the store, cutting what was revoked, and pushes every
// held site's allowlist again.
func (s *Server) resync(ctx context.Context) {
	s.invalidateRoutes()
	s.auth.tokens.Clear()
	s.sealer.mu.Lock()
	clear(s.sealer.open)
	s.sealer.mu.Unlock()
	s.browser.web.auth.mu.Lock()
	clear(s.browser.web.auth.clients)
	s.browser.web.auth.mu.Unlock()
	s.cutRevoked(ctx)

	sites := map[string]bool{}
	for _, a := range s.agents.held() {
		ag, err := s.store.GetAgent(ctx, a.id)
		if errors.Is(err, store.ErrNotFound) || (err == nil && ag.RevokedAt != nil) {
			s.kick(a.id)
			continue
		}
		sites[a.siteID] = true
	}
	for siteID := range sites {
		if err := s.pushAllowlist(ctx, siteID); err != nil {
			s.log.Error("resync: allowlist push", "site", siteID, "err", err)
		}
	}
	for _, cred := range credConns.creds() {
		if reason := s.credRevoked(ctx, cred); reason != nil {
			s.cutHere(cred, "", reason)
		}
	}
	for _, id := range credConns.users() {
		if u, err := s.store.GetUser(ctx, id); errors.Is(err, store.ErrNotFound) || (err == nil && u.DisabledAt != nil) {
			s.cutHere("", id, errUserDisabled)
		}
	}
}

// credRevoked is the reason credential cred no longer holds, or nil if it
// does (or the store cannot tell now: a failed read cuts nothing).
func (s *Server) credRevoked(ctx context.Context, cred string) error {
	err := credStillValid(ctx, s.store, cred)
	if errors.Is(err, errBadCredential) {
		return err
	}
	return nil
}

// credStillValid is nil if credential cred holds, the reason of its
// revocation (an errBadCredential) if not, or the store's error.
func credStillValid(ctx context.Context, st store.Store, cred string) error {
	gone := func(err error, revokedAt *time.Time) bool {
		return errors.Is(err, store.ErrNotFound) || (err == nil && revokedAt != nil)
	}
	switch {
	case strings.HasPrefix(cred, "tok_"):
		t, err := st.GetAPIToken(ctx, cred)
		if gone(err, t.RevokedAt) {
			return errTokenRevoked
		}
		return err
	case strings.HasPrefix(cred, "cli_"):
		c, err := st.GetCLISession(ctx, cred)
		if errors.Is(err, store.ErrNotFound) {
			return errCLIRevoked
		}
		if err == nil && c.RevokedAt != nil {
			return sessionRevoked(ctx, st, c)
		}
		return err
	case strings.HasPrefix(cred, "lic_"):
		l, err := st.GetLicense(ctx, cred)
		if gone(err, l.RevokedAt) {
			return errLicenseRevoked
		}
		return err
	case strings.HasPrefix(cred, rtspCredPrefix):
		c, err := st.GetRTSPCredential(ctx, cred)
		if gone(err, c.RevokedAt) {
			return errRTSPCredRevoked
		}
		return err
	case strings.HasPrefix(cred, "session:"):
		hash, err := hex.DecodeString(strings.TrimPrefix(cred, "session:"))
		if err != nil {
			return errSignedOut
		}
		_, err = st.GetSession(ctx, hash)
		if errors.Is(err, store.ErrNotFound) {
			return errSignedOut
		}
		return err
	}
	return nil
}

// creds lists the credentials that have uses registered.
func (x *credIndex) creds() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([]string, 0, len(x.byCred))
	for c := range x.byCred {
		out = append(out, c)
	}
	return out
}

// users lists the users whose credentials have uses registered.
func (x *credIndex) users() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([]string, 0, len(x.byUser))
	for u := range x.byUser {
		out = append(out, u)
	}
	return out
}

// held lists the agent sessions of the registry.
func (r *registry) held() []*agentSession {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*agentSession, 0, len(r.byID))
	for _, a := range r.byID {
		out = append(out, a)
	}
	return out
}
