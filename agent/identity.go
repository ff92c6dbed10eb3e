package agent

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Files of an agent's state directory. The key never leaves the site PC.
const (
	keyFile       = "agent-key.pem" // mode 0600
	certFile      = "agent.pem"
	caFile        = "agent-ca.pem"
	identityFile  = "agent.json"
	allowlistFile = "allowlist.json"
)

// Identity is what enrollment leaves on disk.
type Identity struct {
	AgentID   string `json:"agent_id"`
	SiteID    string `json:"site_id"`
	RelayAddr string `json:"relay_addr"` // host:port of the agent listener
	RelayURL  string `json:"relay_url"`  // the API the agent enrolled with
	// RelayAddrs are the agent listeners of every relay the agent may
	// use, RelayAddr first; RelayURLs the APIs it was enrolled with. State
	// written before several relays existed has neither: RelayAddr alone
	// is the list then (relayAddrs).
	RelayAddrs []string `json:"relay_addrs,omitempty"`
	RelayURLs  []string `json:"relay_urls,omitempty"`

	cert tls.Certificate
	ca   *x509.CertPool
}

// LoadIdentity reads the identity of an enrolled agent from dir.
func LoadIdentity(dir string) (*Identity, error) {
	b, err := os.ReadFile(filepath.Join(dir, identityFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("agent: %s holds no enrolled agent; run 'nanodems-agent enroll' first", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("agent: read identity: %w", err)
	}
	var id Identity
	if err := json.Unmarshal(b, &id); err != nil {
		return nil, fmt.Errorf("agent: parse %s: %w", identityFile, err)
	}
	id.cert, err = tls.LoadX509KeyPair(filepath.Join(dir, certFile), filepath.Join(dir, keyFile))
	if err != nil {
		return nil, fmt.Errorf("agent: load certificate: %w", err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, caFile))
	if err != nil {
		return nil, fmt.Errorf("agent: read relay CA: %w", err)
	}
	id.ca = x509.NewCertPool()
	if !id.ca.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("agent: %s holds no certificate", caFile)
	}
	return &id, nil
}

// relayAddrs is the list of agent listeners to race.
func (id *Identity) relayAddrs() []string {
	if len(id.RelayAddrs) > 0 {
		return id.RelayAddrs
	}
	return []string{id.RelayAddr}
}

// tlsConfig is the agent side of the mTLS session: TLS 1.3 only, the
// agent's certificate, and trust in the relay's Agent CA alone.
//
// The relay's address is whatever the operator typed or DNS answered, so
// the name is not checked; the chain is, against a CA that signs nothing
// but this relay's listener (server auth) and its agents (client auth).
func (id *Identity) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{id.cert},
		InsecureSkipVerify: true, // replaced by VerifyConnection below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("relay presented no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
				Roots:         id.ca,
				Intermediates: inter,
				KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if err != nil {
				return fmt.Errorf("relay certificate is not from this relay's CA: %w", err)
			}
			return nil
		},
	}
}
