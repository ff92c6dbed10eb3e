package relay

import (
	"context"

	"github.com/nanodems/connector/relay/store"
)

// afterDeviceChange acts on a device change the store holds: it drops the
// cached routes and login, cuts the tunnels of revoked handles and pushes
// the site's allowlist.
func (s *Server) afterDeviceChange(ctx context.Context, site store.Site, deviceID string) {
	s.sealer.forgetCreds(deviceID)
	s.browser.web.forgetAuth(deviceID)
	s.invalidateRoutes()
	s.cutRevoked(ctx)
	if err := s.pushAllowlist(ctx, site.ID); err != nil {
		s.log.Error("allowlist push", "site", site.ID, "err", err)
	}
}
