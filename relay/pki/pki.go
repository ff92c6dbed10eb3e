// Package pki holds the relay's certificate authorities and certificates.
//
// The Agent CA signs two kinds of leaf: agent client certificates (CN = the
// agent id, client-auth only) and the agent listener's server certificate
// (server-auth only). The agent trusts exactly this CA for the listener, so
// a stolen agent certificate cannot pose as the relay (wrong key usage) and
// no public CA can either. The API listener has its own certificate, self-
// signed unless the operator supplies one; agents pin its public key for
// enrollment the way kubeadm pins its CA (--discovery-token-ca-cert-hash).
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/nanodems/connector/internal/atomicfile"
	"github.com/nanodems/connector/internal/pin"
)

// CA is a certificate authority whose key lives in the data directory.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	PEM  []byte // the CA certificate, PEM encoded
}

// LoadOrCreateCA loads dir/name.pem and dir/name-key.pem, creating both on
// first start (key mode 0600).
func LoadOrCreateCA(dir, name, commonName string) (*CA, error) {
	certPath := filepath.Join(dir, name+".pem")
	keyPath := filepath.Join(dir, name+"-key.pem")
	cert, key, certPEM, err := loadPair(certPath, keyPath)
	if err == nil {
		return &CA{Cert: cert, Key: key, PEM: certPEM}, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("pki: load %s: %w", name, err)
	}
	newKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randSerial(),
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"nanodems"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(20, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, newKey.Public(), newKey)
	if err != nil {
		return nil, fmt.Errorf("pki: create %s: %w", name, err)
	}
	if err := writePair(certPath, keyPath, der, newKey); err != nil {
		return nil, err
	}
	return LoadOrCreateCA(dir, name, commonName)
}

// Pool returns a cert pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// SignClient signs an agent's CSR. The CN is set by the relay, never taken
// from the CSR, so an enrolling agent cannot choose its own identity.
func (ca *CA) SignClient(csr *x509.CertificateRequest, cn string, ttl time.Duration) (certPEM []byte, serial string, err error) {
	if err := csr.CheckSignature(); err != nil {
		return nil, "", fmt.Errorf("pki: csr signature: %w", err)
	}
	sn := randSerial()
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-5 * time.Minute),
		NotAfter:     time.Now().Add(ttl),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, csr.PublicKey, ca.Key)
	if err != nil {
		return nil, "", fmt.Errorf("pki: sign %s: %w", cn, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), Serial(sn), nil
}

// ServerCert issues a server-auth leaf for the given names and IPs.
func (ca *CA) ServerCert(hosts []string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := serverTemplate(hosts)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: server cert: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Cert.Raw}, PrivateKey: key, Leaf: mustParse(der)}, nil
}

// LoadOrCreateSelfSigned returns the API listener's certificate: the files
// at certPath/keyPath, or a self-signed pair created there on first start.
// Persisting it keeps its public key — and so the enrollment pin — stable
// across restarts.
func LoadOrCreateSelfSigned(certPath, keyPath string, hosts []string) (tls.Certificate, error) {
	if _, _, _, err := loadPair(certPath, keyPath); errors.Is(err, os.ErrNotExist) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return tls.Certificate{}, err
		}
		tmpl := serverTemplate(hosts)
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("pki: self-signed: %w", err)
		}
		if err := writePair(certPath, keyPath, der, key); err != nil {
			return tls.Certificate{}, err
		}
	}
	c, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: load %s: %w", certPath, err)
	}
	return c, nil
}

// Pin is the SHA-256 of a certificate's SubjectPublicKeyInfo, written
// "sha256:<hex>". It survives re-issuing a certificate for the same key.
func Pin(cert *x509.Certificate) string { return pin.Of(cert) }

// Serial renders a serial number the way the store keeps it.
func Serial(n *big.Int) string { return hex.EncodeToString(n.Bytes()) }

func serverTemplate(hosts []string) *x509.Certificate {
	tmpl := &x509.Certificate{
		SerialNumber: randSerial(),
		Subject:      pkix.Name{CommonName: "nanodems-relay"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(5, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return tmpl
}

func randSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n.Add(n, big.NewInt(1))
}

func mustParse(der []byte) *x509.Certificate {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err) // we just created it
	}
	return c
}

func loadPair(certPath, keyPath string) (*x509.Certificate, crypto.Signer, []byte, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, nil, err
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, nil, nil, fmt.Errorf("key in %s cannot sign", keyPath)
	}
	return pair.Leaf, signer, certPEM, nil
}

func writePair(certPath, keyPath string, der []byte, key *ecdsa.PrivateKey) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return atomicfile.Write(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}
