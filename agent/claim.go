package agent

import (
	"context"
	"fmt"
	"strings"

	"github.com/nanodems/connector/mux"
)

// ClaimOptions say where and as what device an embedded agent claims.
type ClaimOptions struct {
	RelayURL string // the relay's API, https://host:port (http only on loopback)
	// Serial is the manufacturer serial the device was pre-registered
	// with on the relay (a device's "serial").
	Serial string
	Pin    string // as EnrollOptions.Pin
	Dir    string // where the key, certificate and state go
}

// Claim is enrollment for an agent that runs on the device itself: instead
// of a site's one-shot token it names the serial an operator registered
// the device with, and the relay binds the new agent to that device's
// site. The key never leaves dir.
func Claim(ctx context.Context, o ClaimOptions) (*Identity, error) {
	serial := strings.TrimSpace(o.Serial)
	if serial == "" {
		return nil, fmt.Errorf("agent: claim needs the device's serial")
	}
	return obtainCertificate(ctx, certRequest{
		relayURLs: []string{o.RelayURL}, pin: o.Pin, dir: o.Dir, path: "/api/claim", what: "claim",
		body: func(csr string) any { return mux.ClaimRequest{Serial: serial, CSR: csr} },
	})
}
