package relay

import (
	"context"
	"fmt"

	"github.com/nanodems/connector/mux"
)

// allowlist builds the site's allowlist at its current version: every
// (host, port) of every device of the site.
func (s *Server) allowlist(ctx context.Context, siteID string) (mux.Allowlist, error) {
	site, err := s.store.GetSite(ctx, siteID)
	if err != nil {
		return mux.Allowlist{}, err
	}
	devs, err := s.store.ListDevices(ctx, siteID)
	if err != nil {
		return mux.Allowlist{}, err
	}
	al := mux.Allowlist{Version: site.AllowlistVersion, Targets: []mux.Target{}}
	for _, d := range devs {
		for _, p := range d.Ports {
			al.Targets = append(al.Targets, mux.Target{Host: d.Host, Port: uint16(p)})
		}
	}
	return al, nil
}

// pushAllowlist sends the site's current allowlist to every agent of the
// site connected here. Two pushes that race arrive in either order; the
// agent keeps the higher version and refuses the other, so the race is
// harmless.
func (s *Server) pushAllowlist(ctx context.Context, siteID string) error {
	al, err := s.allowlist(ctx, siteID)
	if err != nil {
		return fmt.Errorf("build allowlist of site %s: %w", siteID, err)
	}
	for _, a := range s.agents.site(siteID) {
		if err := a.send(mux.MsgAllowlist, al); err != nil {
			s.log.Warn("allowlist push failed", "agent", a.id, "err", err)
		}
	}
	return nil
}

func (s *Server) pushAllowlistTo(ctx context.Context, a *agentSession) error {
	al, err := s.allowlist(ctx, a.siteID)
	if err != nil {
		return err
	}
	return a.send(mux.MsgAllowlist, al)
}
