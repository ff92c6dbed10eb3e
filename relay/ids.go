package relay

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"strings"

	"github.com/nanodems/connector/relay/store"
)

// newID returns prefix + 20 lowercase base32 chars (100 random bits).
// Ids are not secrets — handles and tokens are — but random ids keep
// tenants from counting each other's sites.
func newID(prefix string) string {
	var b [13]byte
	rand.Read(b[:])
	return prefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))[:20]
}

// audit appends an event; a failing audit write is logged, never hidden.
func (s *Server) audit(e store.AuditEvent) {
	e.At = s.cfg.Now()
	if err := s.store.AppendAudit(context.Background(), e); err != nil {
		s.log.Error("audit write failed", "action", e.Action, "target", e.Target, "err", err)
	}
}

// tenantOfSite is the tenant that owns siteID, or "" if unknown.
func (s *Server) tenantOfSite(siteID string) string {
	site, err := s.store.GetSite(context.Background(), siteID)
	if err != nil {
		return ""
	}
	return site.TenantID
}
