package relay

import (
	"context"

	"github.com/nanodems/connector/relay/store"
)

// managementAPI serves the JSON management API under /api/ for the admin
// key, nt_ tokens and Basic sign-ins (authenticator.api wraps every
// route): tenants, users and tokens, sites and enrollment tokens
// (api_tenants.go), devices (api_devices.go), agents and the audit log
// (api_agents.go). It depends on the store, the authenticator (revoking a
// token clears its cache), the sealer (device logins), the registry (the
// live state of agents) and the relay's agent side, which acts on what
// the API changed.
type managementAPI struct {
	base
	auth      *authenticator
	sealer    *sealer
	agents    *registry
	agentSide agentSide
	apiPin    string // "sha256:…" in the enroll command, "" when not pinned
}

// agentSide is what the API asks of the relay's agent side once the store
// holds a change: the Server, which owns the route cache, the live
// tunnels and the agent sessions.
type agentSide interface {
	// afterDeviceChange drops cached routes and the device's login, cuts
	// tunnels of revoked handles and pushes the site's allowlist.
	afterDeviceChange(ctx context.Context, site store.Site, deviceID string)
	// kick closes an agent's session and tunnels, if it is connected here.
	kick(agentID string) (bool, int)
	// afterHandleRevoked drops cached routes and cuts the tunnels of
	// handles that no longer resolve; it returns how many it cut.
	afterHandleRevoked(ctx context.Context) int
}

var _ agentSide = (*Server)(nil)
