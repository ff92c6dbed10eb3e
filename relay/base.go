package relay

import (
	"context"
	"log/slog"

	"github.com/nanodems/connector/relay/store"
)

// base is what the relay and every part of its operator edge share: the
// configuration (read-only after New), the store and the log, and the
// helpers every part uses over them, so that no part needs the Server:
// audit and tenantOfSite (this file), writeError (httperr.go), errorPage
// (pages.go), siteFor and publicAPIURL (api_tenants.go).
type base struct {
	cfg   *Config
	store store.Store
	log   *slog.Logger
}

// audit appends an event; a failing audit write is logged, never hidden.
func (s *base) audit(e store.AuditEvent) {
	e.At = s.cfg.Now()
	if err := s.store.AppendAudit(context.Background(), e); err != nil {
		s.log.Error("audit write failed", "action", e.Action, "target", e.Target, "err", err)
	}
}

// tenantOfSite is the tenant that owns siteID, or "" if unknown.
func (s *base) tenantOfSite(siteID string) string {
	site, err := s.store.GetSite(context.Background(), siteID)
	if err != nil {
		return ""
	}
	return site.TenantID
}
