package relay

import (
	"github.com/nanodems/connector/mux"
)

// PushAllowlistRaw sends al to every agent of the site as is, bypassing
// the store: what a confused or compromised relay could send.
func PushAllowlistRaw(s *Server, siteID string, al mux.Allowlist) {
	for _, a := range s.agents.site(siteID) {
		a.send(mux.MsgAllowlist, al)
	}
}
