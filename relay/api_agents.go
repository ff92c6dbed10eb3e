package relay

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nanodems/connector/mux"
	"github.com/nanodems/connector/relay/secret"
	"github.com/nanodems/connector/relay/store"
)

// agentCertTTL is the life of an agent certificate. Revocation, not
// expiry, is what removes an agent; expiry bounds a forgotten key.
const agentCertTTL = 5 * 365 * 24 * time.Hour

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request, p Principal) error {
	site, err := s.siteFor(r, p, r.PathValue("siteId"))
	if err != nil {
		return err
	}
	agents, err := s.store.ListAgents(r.Context(), site.ID)
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(agents))
	for _, a := range agents {
		j := map[string]any{"id": a.ID, "site_id": a.SiteID, "created_at": a.CreatedAt, "revoked": a.RevokedAt != nil, "online": false}
		if a.RevokedAt != nil {
			j["revoked_at"] = a.RevokedAt
		}
		if live := s.agents.get(a.ID); live != nil {
			j["online"] = true
			j["relay"] = s.cfg.NodeName
			j["remote_addr"] = live.remote
			j["connected_at"] = live.connectedAt
			j["active_streams"] = live.active.Load()
			j["dedicated_total"] = live.dedicated.Load()
			j["allowlist_version"] = live.allowlistHeld.Load()
			if hb := live.heartbeat.Load(); hb != nil {
				j["last_heartbeat"] = hb.At
				j["bytes_in"] = hb.BytesIn
				j["bytes_out"] = hb.BytesOut
				j["agent_active_streams"] = hb.ActiveStreams
			}
		}
		out = append(out, j)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// revokeAgent marks the agent revoked and closes its session and all its
// tunnels at once; its certificate is refused on every later hello.
func (s *Server) revokeAgent(w http.ResponseWriter, r *http.Request, p Principal) error {
	id := r.PathValue("agentId")
	a, err := s.store.GetAgent(r.Context(), id)
	if err != nil {
		return lookup(err, "agent "+id)
	}
	site, err := s.siteFor(r, p, a.SiteID)
	if err != nil {
		return err
	}
	if err := s.store.RevokeAgent(r.Context(), id, s.cfg.Now()); err != nil {
		return err
	}
	kicked, tunnels := s.kick(id)
	s.audit(store.AuditEvent{TenantID: site.TenantID, Actor: p.Actor, Action: "agent.revoke", Target: id, Detail: fmt.Sprintf("session closed: %v, tunnels closed: %d", kicked, tunnels)})
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "revoked": true, "disconnected": kicked})
	return nil
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, p Principal) error {
	q := r.URL.Query()
	f := store.AuditFilter{TenantID: q.Get("tenant_id"), Action: q.Get("action")}
	if !p.Admin {
		f.TenantID = p.TenantID
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return fmt.Errorf("%w: limit must be 1 to 1000", errBadRequest)
		}
		f.Limit = n
	}
	evs, err := s.store.ListAudit(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(evs))
	for _, e := range evs {
		out = append(out, map[string]any{"id": e.ID, "at": e.At, "tenant_id": e.TenantID, "actor": e.Actor, "action": e.Action, "target": e.Target, "detail": e.Detail})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// handleEnroll exchanges a one-shot enrollment token and a CSR for an
// agent certificate whose CN is a new agent id chosen here.
func (s *Server) handleEnroll(w http.ResponseWriter, r *http.Request) {
	err := s.enroll(w, r)
	if err != nil {
		s.writeError(w, r, err)
	}
}

func (s *Server) enroll(w http.ResponseWriter, r *http.Request) error {
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

// publicAgentAddr is where enrolled agents dial: the configured address,
// else the host the agent reached the API at, with the agent port.
func (s *Server) publicAgentAddr(r *http.Request) string {
	if s.cfg.PublicAgentAddr != "" {
		return s.cfg.PublicAgentAddr
	}
	_, port, _ := net.SplitHostPort(s.agentLn.Addr().String())
	host := r.Host
	if h, _, err := net.SplitHostPort(r.Host); err == nil {
		host = h
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), port)
}
