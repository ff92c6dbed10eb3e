package relay

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nanodems/connector/mux"
	"github.com/nanodems/connector/relay/pki"
	"github.com/nanodems/connector/relay/store"
)

// claimer serves POST /api/claim: an agent that runs on the device itself
// (an embedded agent) trades the manufacturer serial an operator
// pre-registered the device with, and a CSR, for an agent certificate
// bound to that device's site. It is enrollment without a token, so the
// serial is the credential: a serial is claimed once, and failures are
// limited per client address (serials are printed on boxes and often
// sequential; the limit makes walking them slow). It depends on what the
// enroller does: the store, the Agent CA and where agents dial.
type claimer struct {
	base
	ca              *pki.CA
	publicAgentAddr func(r *http.Request) string
	fails           *failLimiter
}

// Failed claims allowed per client address: 10, then one every 6 s (10 a
// minute, 14,400 a day). A device claims once in its life; a site that
// unboxes a hundred cameras at once succeeds on each, and successes are
// given back.
const (
	claimBurst  = 10
	claimRefill = 6 * time.Second
)

func newClaimer(b base, ca *pki.CA, publicAgentAddr func(r *http.Request) string) *claimer {
	return &claimer{base: b, ca: ca, publicAgentAddr: publicAgentAddr, fails: newFailLimiter(claimBurst, claimRefill, maxLimiterKeys)}
}

// handleClaim answers POST /api/claim.
func (s *claimer) handleClaim(w http.ResponseWriter, r *http.Request) {
	if err := s.claim(w, r); err != nil {
		s.writeError(w, r, err)
	}
}

func (s *claimer) claim(w http.ResponseWriter, r *http.Request) error {
	now := s.cfg.Now()
	key := addrKey(r.RemoteAddr)
	// A locked address is refused before anything is read, and without
	// an audit record: the record of its last failure says it.
	wait, last := s.fails.take(now, key)
	if wait > 0 {
		return &tryLaterError{code: http.StatusTooManyRequests, after: wait, msg: "too many failed claims from this address; try again later"}
	}
	var in mux.ClaimRequest
	if err := readJSON(r, &in); err != nil {
		return err
	}
	if in.Serial == "" {
		return fmt.Errorf("%w: serial is missing", errBadRequest)
	}
	if _, err := (&deviceInput{Serial: &in.Serial}).serial(); err != nil {
		return err
	}
	limited := ""
	if last {
		limited = "; further claims from this address are limited"
	}
	csr, err := parseAgentCSR(in.CSR)
	if err != nil {
		return err
	}
	id := newID("agt_")
	certPEM, certSerial, err := s.ca.SignClient(csr, id, agentCertTTL)
	if err != nil {
		return err
	}
	ds, err := s.store.ClaimDeviceSerial(r.Context(), in.Serial, store.Agent{ID: id, CertSerial: certSerial, CreatedAt: now})
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.audit(store.AuditEvent{Actor: "relay", Action: "agent.claim_refused", Target: in.Serial, Detail: "unknown serial, from " + r.RemoteAddr + limited})
		return &lookupError{msg: fmt.Sprintf("no unclaimed device is registered with serial %q", in.Serial), err: err}
	case errors.Is(err, store.ErrUsed):
		s.audit(store.AuditEvent{TenantID: s.tenantOfSite(ds.SiteID), Actor: "relay", Action: "agent.claim_refused", Target: ds.DeviceID,
			Detail: fmt.Sprintf("serial %q already claimed by agent %s, from %s%s", in.Serial, ds.AgentID, r.RemoteAddr, limited)})
		return &lookupError{msg: fmt.Sprintf("serial %q was already claimed; an operator re-registers the device to claim it again", in.Serial), err: store.ErrConflict}
	case err != nil:
		s.fails.refund(now, key)
		return err
	}
	s.fails.refund(now, key)
	s.audit(store.AuditEvent{TenantID: s.tenantOfSite(ds.SiteID), Actor: "agent:" + id, Action: "agent.claim", Target: id,
		Detail: fmt.Sprintf("device %s serial %q, site %s, from %s", ds.DeviceID, in.Serial, ds.SiteID, r.RemoteAddr)})
	writeJSON(w, http.StatusOK, mux.EnrollResponse{AgentID: id, SiteID: ds.SiteID, Certificate: string(certPEM), CA: string(s.ca.PEM), AgentAddr: s.publicAgentAddr(r)})
	return nil
}

// parseAgentCSR reads an agent's PEM certificate request and checks its
// signature (the agent holds the key).
func parseAgentCSR(p string) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode([]byte(p))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("%w: csr is not a PEM certificate request", errBadRequest)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: csr: %v", errBadRequest, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: csr signature: %v", errBadRequest, err)
	}
	return csr, nil
}
