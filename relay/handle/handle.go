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
	"encoding/base32"
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

// labelEnc is lowercase base32 without padding: DNS-safe, and browsers
// lowercase host names, which would corrupt base64url.
var labelEnc = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Label is the DNS label of a handle for the subdomain mode
// ({label}.<apps domain>): "h" + 26 base32 chars for a current handle, the
// handle itself (already lowercase hex) for a legacy one.
func Label(h string) (string, error) {
	kind, err := Parse(h)
	if err != nil {
		return "", err
	}
	if kind == Legacy {
		return h, nil
	}
	b, _ := base64.RawURLEncoding.DecodeString(h[len(prefix):])
	return "h" + labelEnc.EncodeToString(b), nil
}

// FromLabel inverts Label.
func FromLabel(label string) (string, error) {
	if _, err := Parse(label); err == nil && len(label) == legacyLen {
		return label, nil
	}
	if len(label) != 27 || label[0] != 'h' {
		return "", fmt.Errorf("%w: %q is not a handle label", ErrMalformed, label)
	}
	// encoding/base32 has no strict mode: a label whose trailing bits are
	// not zero decodes to the same bytes as the canonical one (the fuzzer
	// found "h2222…2" beside "h2222…y"). Re-encoding rejects those, so
	// each handle has exactly one label.
	b, err := labelEnc.DecodeString(label[1:])
	if err != nil || len(b) != 16 || labelEnc.EncodeToString(b) != label[1:] {
		return "", fmt.Errorf("%w: %q is not a handle label", ErrMalformed, label)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b), nil
}
