// Package license reads and mints the license GUIDs of external operator
// consoles (OpCon). A console presents its tenant's license on
// GET /api/tunnel/{handle} in one of three forms (docs/api.md):
//
//   - the WebSocket subprotocol "license.{guid}.user.{uid}", for browsers,
//     which cannot set headers on a WebSocket;
//   - the two subprotocols "license.{guid}" and "user.{uid}";
//   - the headers X-License: {guid} and, optionally, X-User-Id: {uid},
//     from servers.
//
// The GUID is the capability; the user id is what the console says about
// its own user, kept for the audit log and never used to decide anything.
// Both are untrusted network input: this package bounds and checks them
// and is fuzzed (fuzz/license_fuzz_test.go).
package license

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
)

// ErrMalformed is wrapped by every refusal of what a client presented.
var ErrMalformed = errors.New("malformed license credential")

// Prefixes of the subprotocol forms.
const (
	licensePrefix = "license."
	userPrefix    = "user."
	userInfix     = ".user."
)

// guidLen is the length of a GUID's canonical text, 8-4-4-4-12 hex.
const guidLen = 36

// MaxUserID bounds a user id: it lands in the audit log.
const MaxUserID = 128

// Credential is a license as a client presented it.
type Credential struct {
	GUID   string // canonical: lower-case 8-4-4-4-12 hex
	UserID string // "" when none was given
	// Subprotocol is the offered subprotocol that carried the license,
	// which the relay echoes (RFC 6455 §4.2.2); "" for the header form.
	Subprotocol string
}

// New returns a fresh license GUID: a version 4 UUID (122 random bits) in
// canonical form.
func New() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// ParseGUID returns s in canonical form (lower-case) if it is a GUID:
// 32 hex digits grouped 8-4-4-4-12.
func ParseGUID(s string) (string, error) {
	if len(s) != guidLen {
		return "", fmt.Errorf("%w: a license is a GUID like 0f8fad5b-d9cb-469f-a165-70867728950e", ErrMalformed)
	}
	var b strings.Builder
	b.Grow(guidLen)
	for i := 0; i < guidLen; i++ {
		c := s[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return "", fmt.Errorf("%w: a license is a GUID like 0f8fad5b-d9cb-469f-a165-70867728950e", ErrMalformed)
			}
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
		case c >= 'A' && c <= 'F':
			c += 'a' - 'A'
		default:
			return "", fmt.Errorf("%w: a license is a GUID like 0f8fad5b-d9cb-469f-a165-70867728950e", ErrMalformed)
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

// checkUserID refuses a user id that is empty, too long, or holds a
// character outside an HTTP token (RFC 9110 tchar): what a subprotocol
// may carry, and nothing that could forge a line of the audit log.
func checkUserID(uid string) error {
	if uid == "" || len(uid) > MaxUserID {
		return fmt.Errorf("%w: a user id has 1 to %d characters", ErrMalformed, MaxUserID)
	}
	for i := 0; i < len(uid); i++ {
		if !isTchar(uid[i]) {
			return fmt.Errorf("%w: a user id holds only letters, digits and !#$%%&'*+-.^_`|~", ErrMalformed)
		}
	}
	return nil
}

func isTchar(c byte) bool {
	switch {
	case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// FromHeaders reads the header form: X-License (required) and X-User-Id
// (optional).
func FromHeaders(guid, userID string) (Credential, error) {
	g, err := ParseGUID(strings.TrimSpace(guid))
	if err != nil {
		return Credential{}, err
	}
	userID = strings.TrimSpace(userID)
	if userID != "" {
		if err := checkUserID(userID); err != nil {
			return Credential{}, err
		}
	}
	return Credential{GUID: g, UserID: userID}, nil
}

// maxOffers bounds the subprotocols read from one request.
const maxOffers = 32

// FromSubprotocols reads a license from the Sec-WebSocket-Protocol values
// of a request (each a comma-separated list). ok is false when no offered
// subprotocol starts with "license.": the client presents something else,
// or nothing. A license offered twice, a user id offered twice, or a
// malformed one is an error.
func FromSubprotocols(values []string) (c Credential, ok bool, err error) {
	var lic, user string
	n := 0
	for _, v := range values {
		for p := range strings.SplitSeq(v, ",") {
			p = strings.Trim(p, " \t")
			if p == "" {
				continue
			}
			if n++; n > maxOffers {
				return Credential{}, true, fmt.Errorf("%w: more than %d subprotocols offered", ErrMalformed, maxOffers)
			}
			switch {
			case strings.HasPrefix(p, licensePrefix):
				if lic != "" {
					return Credential{}, true, fmt.Errorf("%w: more than one license offered", ErrMalformed)
				}
				lic = p
			case strings.HasPrefix(p, userPrefix):
				if user != "" {
					return Credential{}, true, fmt.Errorf("%w: more than one user id offered", ErrMalformed)
				}
				user = p
			}
		}
	}
	if lic == "" {
		return Credential{}, false, nil
	}
	rest := lic[len(licensePrefix):]
	if len(rest) < guidLen {
		_, err := ParseGUID(rest)
		return Credential{}, true, err
	}
	g, err := ParseGUID(rest[:guidLen])
	if err != nil {
		return Credential{}, true, err
	}
	c = Credential{GUID: g, Subprotocol: lic}
	switch tail := rest[guidLen:]; {
	case tail == "":
		// The two-subprotocol form; the user id is optional.
		if user != "" {
			c.UserID = user[len(userPrefix):]
			if err := checkUserID(c.UserID); err != nil {
				return Credential{}, true, err
			}
		}
	case strings.HasPrefix(tail, userInfix):
		if user != "" {
			return Credential{}, true, fmt.Errorf("%w: a user id offered twice", ErrMalformed)
		}
		c.UserID = tail[len(userInfix):]
		if err := checkUserID(c.UserID); err != nil {
			return Credential{}, true, err
		}
	default:
		return Credential{}, true, fmt.Errorf(`%w: the subprotocol is "license.{guid}.user.{uid}" or "license.{guid}"`, ErrMalformed)
	}
	return c, true, nil
}
