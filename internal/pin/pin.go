// Package pin checks a relay's API certificate against a public-key pin,
// "sha256:<hex of the SubjectPublicKeyInfo digest>". A relay without a
// certificate from a public CA makes a self-signed one and prints its pin;
// the agent's enrollment and the CLI trust exactly that key.
package pin

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
)

// Of is the pin of cert's public key.
func Of(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// TLSConfig trusts exactly the certificate whose public key has pin p, or
// the system roots when p is empty. The chain is not checked against any
// root with a pin: the pin is the trust.
func TLSConfig(p string) *tls.Config {
	if p == "" {
		return &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by VerifyConnection's pin check
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("relay presented no certificate")
			}
			if got := Of(cs.PeerCertificates[0]); got != p {
				return fmt.Errorf("relay certificate pin %s does not match --ca-pin %s", got, p)
			}
			return nil
		},
	}
}
