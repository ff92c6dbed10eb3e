package relay

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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

// RunLocked runs fn every tick on the relay of the fleet that holds the
// TTL lock name (runLocked), until s closes.
func RunLocked(s *Server, name string, every, ttl time.Duration, fn func()) {
	s.runLocked(name, every, ttl, func(context.Context) { fn() })
}

// Crash makes s's Close behave as a crash for presence and locks: its
// leases stay until they expire, its locks until their TTL passes.
func Crash(s *Server) { s.crashed.Store(true) }

// LeaseTTL is how long a presence lease outlives its last renewal.
const LeaseTTL = leaseTTL

// PeerTLS is the relay's leaf under the internal CA and the CA's pool, as
// another relay of the fleet presents and trusts them.
func PeerTLS(s *Server) (tls.Certificate, *x509.CertPool) {
	return s.bridge.clientTLS.Certificates[0], s.bridge.clientTLS.RootCAs
}

// SetBridgeWindows sets the HTTP/2 windows of the bridges opened and
// served by relays started until restore is called; 0 leaves gRPC's
// defaults (64 KiB grown by its BDP estimator).
func SetBridgeWindows(stream, conn int32) (restore func()) {
	os, oc := bridgeStreamWindow, bridgeConnWindow
	bridgeStreamWindow, bridgeConnWindow = stream, conn
	return func() { bridgeStreamWindow, bridgeConnWindow = os, oc }
}

// ReadyReason is why /healthz/ready would answer 503 now, "" when it
// would answer 200: while the relay drains, its API listener is closed
// and the answer can only be read here.
func ReadyReason(s *Server) string { return s.notReady(context.Background()) }

// PeerLinkConns counts the TLS connections of the bridge: the links this
// relay dialled that are up, and the ones its peer listener serves.
func PeerLinkConns(s *Server) (dialled, served int) {
	b := s.bridge
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.links {
		l.mu.Lock()
		if l.sess != nil && !l.sess.IsClosed() {
			dialled++
		}
		l.mu.Unlock()
	}
	return dialled, len(b.serving)
}

// CutPeerLinks closes the sockets of the links this relay dialled, as a
// network failure would.
func CutPeerLinks(s *Server) {
	b := s.bridge
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.links {
		l.mu.Lock()
		if l.conn != nil {
			l.conn.NetConn().Close()
		}
		l.mu.Unlock()
	}
}
