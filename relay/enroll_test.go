package relay_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nanodems/connector/agent"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/relay/pki"
	"github.com/nanodems/connector/relay/secret"
	"github.com/nanodems/connector/relay/store"
)

func mintEnrollment(t *testing.T, d *demo.Demo) string {
	t.Helper()
	var out struct {
		Token string `json:"enrollment_token"`
	}
	must(t, d.API.Do(context.Background(), "POST", "/api/sites/"+d.Info.SiteID+"/enrollment-tokens", nil, &out, demo.Bearer(d.Info.Token)))
	return out.Token
}

func TestEnrollmentTokenIsOneShot(t *testing.T) {
	d := startDemo(t)
	tok := mintEnrollment(t, d)
	o := agent.EnrollOptions{RelayURL: d.Info.RelayURL, Token: tok, Pin: d.Info.CAPin, Dir: t.TempDir()}
	id, err := agent.Enroll(context.Background(), o)
	must(t, err)
	if !strings.HasPrefix(id.AgentID, "agt_") || id.SiteID != d.Info.SiteID {
		t.Fatalf("enrolled %+v", id)
	}
	if fi, err := os.Stat(filepath.Join(o.Dir, "agent-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("agent key: %v, mode %v; want 0600", err, fi.Mode())
	}
	o.Dir = t.TempDir()
	_, err = agent.Enroll(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("second enrollment with one token: %v, want 'already used'", err)
	}
	wantAudit(t, d, "agent.enroll", id.AgentID)
}

func TestEnrollmentTokenExpires(t *testing.T) {
	d := startDemo(t)
	plain, hash := secret.New(secret.Enrollment)
	must(t, d.Relay.Store().CreateEnrollmentToken(context.Background(), store.EnrollmentToken{
		Hash: hash, SiteID: d.Info.SiteID, ExpiresAt: time.Now().Add(-time.Minute), CreatedAt: time.Now().Add(-25 * time.Hour),
	}))
	_, err := agent.Enroll(context.Background(), agent.EnrollOptions{RelayURL: d.Info.RelayURL, Token: plain, Pin: d.Info.CAPin, Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("enrollment with an expired token: %v, want 'expired'", err)
	}
}

func TestEnrollmentPinMismatch(t *testing.T) {
	d := startDemo(t)
	_, err := agent.Enroll(context.Background(), agent.EnrollOptions{RelayURL: d.Info.RelayURL, Token: mintEnrollment(t, d), Pin: "sha256:" + strings.Repeat("0", 64), Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("enrollment against the wrong pin: %v", err)
	}
}

// An agent whose certificate is valid (signed by the Agent CA) but whose CN
// is no registered agent is refused for good and audited; it is never
// grafted into a site.
func TestUnknownCNRefused(t *testing.T) {
	d := startDemo(t)
	dataDir := filepath.Join(filepath.Dir(d.Relay.AdminKeyFile()))
	ca, err := pki.LoadOrCreateCA(dataDir, "agent-ca", "")
	must(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	must(t, err)
	csr, err := x509.ParseCertificateRequest(csrDER)
	must(t, err)
	const cn = "agt_forgedforgedforged"
	certPEM, _, err := ca.SignClient(csr, cn, time.Hour)
	must(t, err)

	dir := t.TempDir()
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	idJSON, _ := json.Marshal(agent.Identity{AgentID: cn, SiteID: d.Info.SiteID, RelayAddr: d.Relay.AgentAddr()})
	for name, data := range map[string][]byte{
		"agent-key.pem": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		"agent.pem":     certPEM,
		"agent-ca.pem":  ca.PEM,
		"agent.json":    idJSON,
	} {
		must(t, os.WriteFile(filepath.Join(dir, name), data, 0o600))
	}
	a, err := agent.New(agent.Config{Dir: dir, Logger: quietLogger(), AllowLoopback: true})
	must(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = a.Run(ctx)
	if !errors.Is(err, agent.ErrRefused) || !strings.Contains(err.Error(), "unknown agent CN") {
		t.Fatalf("forged agent: %v, want a permanent 'unknown agent CN' refusal", err)
	}
	wantAudit(t, d, "agent.reject_unregistered_cn", cn)
}
