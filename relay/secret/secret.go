// Package secret mints and checks the relay's bearer secrets: enrollment
// tokens, nt_ API tokens, ops_ CLI sessions, nk_ keys, the admin key.
//
// Every secret is a prefix plus 256 random bits in URL-safe base64. It is
// shown once; only its SHA-256 is stored. A plain hash is enough because the
// secret has full entropy (no dictionary to try), and it lets the relay find
// the row by hash in one indexed lookup; comparisons of stored and presented
// hashes use constant time anyway.
package secret

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
)

// Prefixes of the secret kinds.
const (
	Enrollment = "et_"
	APIToken   = "nt_"
	AdminKey   = "ak_"
	Session    = "ns_"
	CLISession = "ops_" // nanodems-tunnel run --token ops_…
	PartnerKey = "nk_"  // a partner's server mints ops_ sessions with it
	// RTSPSecret is the secret of an RTSP credential, kept by a VMS in
	// rtsp://user:secret@…; the relay stores its Digest HA1, not its hash.
	RTSPSecret = "rs_"
)

// New returns prefix + 43 chars of base64url (256 bits) and its hash.
func New(prefix string) (plain string, hash []byte) {
	var b [32]byte
	rand.Read(b[:])
	plain = prefix + base64.RawURLEncoding.EncodeToString(b[:])
	return plain, Hash(plain)
}

// Hash is the stored form of a secret.
func Hash(plain string) []byte {
	sum := sha256.Sum256([]byte(plain))
	return sum[:]
}

// Equal compares a presented secret with a stored hash in constant time.
func Equal(plain string, hash []byte) bool {
	return subtle.ConstantTimeCompare(Hash(plain), hash) == 1
}

// HasPrefix reports whether s looks like a secret of that kind, so a
// presented credential is routed to the right check before any lookup.
func HasPrefix(s, prefix string) bool {
	return strings.HasPrefix(s, prefix) && len(s) == len(prefix)+43
}
