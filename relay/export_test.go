package relay

import (
	"context"
	"time"

	"github.com/nanodems/connector/mux"
)

// SetAPIIdleTimeout sets the API's keep-alive idle timeout for the relays
// started until restore is called.
func SetAPIIdleTimeout(d time.Duration) (restore func()) {
	old := apiIdleTimeout
	apiIdleTimeout = d
	return func() { apiIdleTimeout = old }
}

// PushAllowlistRaw sends al to every agent of the site as is, bypassing
// the store: what a confused or compromised relay could send.
func PushAllowlistRaw(s *Server, siteID string, al mux.Allowlist) {
	for _, a := range s.agents.site(siteID) {
		a.send(mux.MsgAllowlist, al)
	}
}

// ReadyReason is why /healthz/ready would answer 503 now, "" when it
// would answer 200: while the relay drains, its API listener is closed
// and the answer can only be read here.
func ReadyReason(s *Server) string { return s.notReady(context.Background()) }
