// Package handle mints and parses handles, the opaque routing tokens of
// public URLs (/c/{handle}/, rtsp://…/{handle}/, /api/tunnel/{handle}).
//
// A handle is "h-" + 22 characters of unpadded URL-safe base64: 128 random
// bits, so guessing one is hopeless even without the tenant check behind
// it. Handles of the older form "h-" + 12 lowercase hex (48 bits) still
// resolve until they expire; nothing mints them any more.
package handle

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
)

// Kind tells the two handle formats apart.
type Kind int

const (
	Current Kind = iota + 1 // h- + 22 base64url chars, 128 bits
	Legacy                  // h- + 12 hex chars, 48 bits
)

// ErrMalformed is returned for strings that are no handle at all. Callers
// answer 404 without a store lookup.
var ErrMalformed = errors.New("malformed handle")

const (
	prefix     = "h-"
	currentLen = len(prefix) + 22
	legacyLen  = len(prefix) + 12
)

// New returns a fresh 128-bit handle.
func New() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// Parse reports the kind of s, or ErrMalformed.
func Parse(s string) (Kind, error) {
	if len(s) < len(prefix) || s[:len(prefix)] != prefix {
		return 0, fmt.Errorf("%w: missing %q prefix", ErrMalformed, prefix)
	}
	body := s[len(prefix):]
	switch len(s) {
	case currentLen:
		var b [16]byte
		// Strict decoding rejects non-canonical trailing bits, so every
		// 128-bit value has exactly one spelling.
		n, err := base64.RawURLEncoding.Strict().Decode(b[:], []byte(body))
		if err != nil || n != 16 {
			return 0, fmt.Errorf("%w: not 22 chars of url-safe base64", ErrMalformed)
		}
		return Current, nil
	case legacyLen:
		for i := 0; i < len(body); i++ {
			if c := body[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return 0, fmt.Errorf("%w: legacy handle is not 12 lowercase hex", ErrMalformed)
			}
		}
		return Legacy, nil
	}
	return 0, fmt.Errorf("%w: length %d", ErrMalformed, len(s))
}
