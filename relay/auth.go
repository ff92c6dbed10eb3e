package relay

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/nanodems/connector/relay/secret"
	"github.com/nanodems/connector/relay/store"
)

// Authentication failures; both answer 401.
var (
	errNoCredential  = errors.New("authentication required")
	errBadCredential = errors.New("invalid or revoked credential")
)

// authenticate finds who is asking: X-Admin-Api-Key (crosses tenants),
// Authorization: Bearer nt_… (a user's API token, pinned to the tenant it
// was minted in), or HTTP Basic email:password (so a user can mint a first
// token without an admin).
func (s *Server) authenticate(r *http.Request) (Principal, error) {
	ctx := r.Context()
	if p, ok := consolePrincipal(r); ok {
		return p, nil
	}
	if k := r.Header.Get("X-Admin-Api-Key"); k != "" {
		if subtle.ConstantTimeCompare(secret.Hash(k), s.adminKeyHash) == 1 {
			return Principal{Admin: true, Actor: "admin"}, nil
		}
		return Principal{}, errBadCredential
	}
	if auth := r.Header.Get("Authorization"); auth != "" {
		if tok, ok := strings.CutPrefix(auth, "Bearer "); ok {
			return s.authToken(ctx, strings.TrimSpace(tok))
		}
		if email, pw, ok := r.BasicAuth(); ok {
			u, err := s.checkLogin(r, email, pw)
			if err != nil {
				return Principal{}, err
			}
			return Principal{Admin: u.Superadmin, TenantID: u.TenantID, UserID: u.ID, Actor: "user:" + u.ID}, nil
		}
		return Principal{}, errBadCredential
	}
	return Principal{}, errNoCredential
}

func (s *Server) authToken(ctx context.Context, tok string) (Principal, error) {
	if !secret.HasPrefix(tok, secret.APIToken) {
		return Principal{}, errBadCredential
	}
	hash := secret.Hash(tok)
	key := string(hash)
	if v, ok := s.tokens.Load(key); ok {
		if e := v.(tokenEntry); s.cfg.Now().Before(e.until) {
			return e.p, nil
		}
	}
	t, err := s.store.GetAPITokenByHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) || (err == nil && t.RevokedAt != nil) {
		return Principal{}, errBadCredential
	}
	if err != nil {
		return Principal{}, err
	}
	p := Principal{TenantID: t.TenantID, UserID: t.UserID, Actor: "user:" + t.UserID, Cred: t.ID}
	s.tokens.Store(key, tokenEntry{p: p, until: s.cfg.Now().Add(tokenCacheTTL)})
	return p, nil
}

// tokenCacheTTL bounds how long a valid token's lookup is reused: a tunnel
// open then costs no database read. Revocation clears the cache at once,
// so it is not a window for revoked tokens; it only bounds staleness if
// another relay of the installation revokes.
const tokenCacheTTL = 10 * time.Second

type tokenEntry struct {
	p     Principal
	until time.Time
}
