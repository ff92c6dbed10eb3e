package relay

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

// newID returns prefix + 20 lowercase base32 chars (100 random bits).
// Ids are not secrets — handles and tokens are — but random ids keep
// tenants from counting each other's sites.
func newID(prefix string) string {
	var b [13]byte
	rand.Read(b[:])
	return prefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))[:20]
}
