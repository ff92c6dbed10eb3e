package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
)

// The internal CA signs the relays' own leaves for the inter-relay
// listener (BridgeTunnel), nothing else. It shares no trust with the Agent
// CA: the peer listener trusts only the internal CA, the agent listener
// only the Agent CA, so an agent certificate cannot call a relay's bridge
// and a relay certificate cannot pose as an agent. Every relay of a fleet
// must load the same internal CA (its key included) so that each trusts
// the others' leaves; each still makes its own leaf at start.

// InternalCAName is the file stem of the internal CA: name.pem and
// name-key.pem in the internal CA directory.
const InternalCAName = "internal-ca"

// PeerCert issues a relay's leaf for the peer listener: CN "relay:"+node,
// the given names and addresses as SANs, usable as server and as client,
// since a relay both serves the bridge and calls the others'.
func (ca *CA) PeerCert(node string, hosts []string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := serverTemplate(append([]string{node}, hosts...))
	tmpl.Subject.CommonName = "relay:" + node
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: peer cert: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Cert.Raw}, PrivateKey: key, Leaf: mustParse(der)}, nil
}
