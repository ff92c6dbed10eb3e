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
	"github.com/nanodems/connector/relay/secret"
	"github.com/nanodems/connector/relay/store"
)

// enroller serves POST /api/enroll: an agent trades a site's one-shot
// enrollment token and a CSR for a certificate of the Agent CA. It
// depends on the store (tokens, agents), the Agent CA, and where agents
// dial (the relay's agent listener, Server.publicAgentAddr).
type enroller struct {
	base
	ca              *pki.CA
	publicAgentAddr func(r *http.Request) string
}

// agentCertTTL is the life of an agent certificate. Revocation, not
// expiry, is what removes an agent; expiry bounds a forgotten key.
const agentCertTTL = 5 * 365 * 24 * time.Hour

// handleEnroll exchanges a one-shot enrollment token and a CSR for an
// agent certificate whose CN is a new agent id chosen here.
func (s *enroller) handleEnroll(w http.ResponseWriter, r *http.Request) {
	err := s.enroll(w, r)
	if err != nil {
		s.writeError(w, r, err)
	}
}

func (s *enroller) enroll(w http.ResponseWriter, r *http.Request) error {
	var in mux.EnrollRequest
	if err := readJSON(r, &in); err != nil {
		return err
	}
	if !secret.HasPrefix(in.Token, secret.Enrollment) {
		return fmt.Errorf("%w: invalid enrollment token", errBadCredential)
	}
	block, _ := pem.Decode([]byte(in.CSR))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return fmt.Errorf("%w: csr is not a PEM certificate request", errBadRequest)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return fmt.Errorf("%w: csr: %v", errBadRequest, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return fmt.Errorf("%w: csr signature: %v", errBadRequest, err)
	}
	tok, err := s.store.UseEnrollmentToken(r.Context(), secret.Hash(in.Token), s.cfg.Now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: invalid enrollment token", errBadCredential)
	case errors.Is(err, store.ErrUsed):
		return fmt.Errorf("%w: enrollment token already used; mint a new one for the site", errBadCredential)
	case errors.Is(err, store.ErrExpired):
		return fmt.Errorf("%w: enrollment token expired; mint a new one for the site", errBadCredential)
	case err != nil:
		return err
	}
	id := newID("agt_")
	certPEM, serial, err := s.ca.SignClient(csr, id, agentCertTTL)
	if err != nil {
		return err
	}
	if err := s.store.CreateAgent(r.Context(), store.Agent{ID: id, SiteID: tok.SiteID, CertSerial: serial, CreatedAt: s.cfg.Now()}); err != nil {
		return err
	}
	s.audit(store.AuditEvent{TenantID: s.tenantOfSite(tok.SiteID), Actor: "agent:" + id, Action: "agent.enroll", Target: id, Detail: "site " + tok.SiteID + " from " + r.RemoteAddr})
	writeJSON(w, http.StatusOK, mux.EnrollResponse{AgentID: id, SiteID: tok.SiteID, Certificate: string(certPEM), CA: string(s.ca.PEM), AgentAddr: s.publicAgentAddr(r)})
	return nil
}
