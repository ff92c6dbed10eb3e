package relay

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nanodems/connector/relay/secret"
	"github.com/nanodems/connector/relay/store"
)

// authenticator finds who is calling and in which tenant: the admin key,
// an nt_ API token, HTTP Basic email:password (checkLogin, password.go,
// behind the password gate) and the browser's session cookie. Every part
// of the edge that serves a person or a program asks it, and gets a
// Principal. It depends on the store (credentials are stored hashed) and
// the admin key's hash; CLI sessions (ops_) are the CLI edge's own
// (cliEdge.cliSession).
type authenticator struct {
	base
	adminKeyHash []byte
	tokens       sync.Map      // token hash → tokenEntry, cleared on revocation
	touched      sync.Map      // token id → time.Time its use was last recorded (touchToken)
	pw           *passwordGate // bounds and rate-limits password checks
}

// Authentication failures; both answer 401.
var (
	errNoCredential  = errors.New("authentication required")
	errBadCredential = errors.New("invalid or revoked credential")
)

// authenticate finds who is asking: X-Admin-Api-Key (crosses tenants),
// Authorization: Bearer nt_… (a user's API token, pinned to the tenant it
// was minted in), or HTTP Basic email:password (so a user can mint a first
// token without an admin).
func (s *authenticator) authenticate(r *http.Request) (Principal, error) {
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
			return Principal{Admin: u.Superadmin, TenantID: u.TenantID, UserID: u.ID, Actor: userActor(u, "")}, nil
		}
		return Principal{}, errBadCredential
	}
	if r.Header.Get("X-License") != "" {
		return Principal{}, errLicenseHere
	}
	if r.Header.Get("X-API-Key") != "" {
		return Principal{}, errPartnerKeyHere
	}
	return Principal{}, errNoCredential
}

// Credentials presented where they are not accepted: 401 with where they
// are (docs/api.md's credential table).
var (
	errOpsHere        = fmt.Errorf("%w: an ops_ CLI session is accepted only by the CLI's routes and /api/tunnel/{handle}", errBadCredential)
	errPartnerKeyHere = fmt.Errorf("%w: an nk_ partner key is accepted only as X-API-Key on /api/v1/sessions", errBadCredential)
	errLicenseHere    = fmt.Errorf("%w: a license is accepted only on /api/tunnel/{handle}", errBadCredential)
)

// misplaced is the refusal of a Bearer value that is no nt_ token: the
// reason names where a credential of its kind is accepted.
func misplaced(tok string) error {
	switch {
	case secret.HasPrefix(tok, secret.CLISession):
		return errOpsHere
	case secret.HasPrefix(tok, secret.PartnerKey):
		return errPartnerKeyHere
	}
	return errBadCredential
}

func (s *authenticator) authToken(ctx context.Context, tok string) (Principal, error) {
	if !secret.HasPrefix(tok, secret.APIToken) {
		return Principal{}, misplaced(tok)
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
	s.touchToken(ctx, t.ID)
	s.tokens.Store(key, tokenEntry{p: p, until: s.cfg.Now().Add(tokenCacheTTL)})
	return p, nil
}

// tokenCacheTTL bounds how long a valid token's lookup is reused: a tunnel
// open then costs no database read. Revocation clears the cache at once,
// on this relay and, through the store's change feed, on every other relay
// of the installation (relay/changes.go), so it is not a window for
// revoked tokens; it only bounds staleness should a change be lost.
const tokenCacheTTL = 10 * time.Second

// tokenTouchStep is how stale a token's "last used" may get: its use is
// written at most once per step, by one request, however many calls it
// makes (200 tunnels opened at once with one token cost one write).
const tokenTouchStep = time.Minute

// touchToken records a use of token id (its last_used_at) unless one was
// recorded less than tokenTouchStep ago. A failed write is logged: the
// call it belongs to goes on.
func (s *authenticator) touchToken(ctx context.Context, id string) {
	now := s.cfg.Now()
	prev, loaded := s.touched.LoadOrStore(id, now)
	if loaded {
		if now.Sub(prev.(time.Time)) < tokenTouchStep || !s.touched.CompareAndSwap(id, prev, now) {
			return
		}
	}
	if err := s.store.TouchAPIToken(ctx, id, now); err != nil {
		s.log.Warn("recording a token's use", "token", id, "err", err)
	}
}

type tokenEntry struct {
	p     Principal
	until time.Time
}

// sessionFrom returns the signed-in session of r, if any.
func (s *authenticator) sessionFrom(r *http.Request) (store.Session, store.User, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || !secret.HasPrefix(c.Value, secret.Session) {
		return store.Session{}, store.User{}, false
	}
	ss, err := s.store.GetSession(r.Context(), secret.Hash(c.Value))
	if err != nil || !s.cfg.Now().Before(ss.ExpiresAt) {
		return store.Session{}, store.User{}, false
	}
	u, err := s.store.GetUser(r.Context(), ss.UserID)
	if err != nil || u.DisabledAt != nil {
		return store.Session{}, store.User{}, false
	}
	return ss, u, true
}

// sessionPrincipal is the principal of a signed-in browser, for the proxy
// and for API calls made from the relay's pages.
func (s *authenticator) sessionPrincipal(r *http.Request) (Principal, store.Session, bool) {
	ss, u, ok := s.sessionFrom(r)
	if !ok {
		return Principal{}, ss, false
	}
	return Principal{TenantID: ss.TenantID, UserID: u.ID, Actor: userActor(u, ss.TenantID), Cred: sessionCred(ss.Hash)}, ss, true
}

// userActor is u in the audit log while acting in tenant acting ("" for
// any tenant: a superadmin's password reaches them all). A superadmin
// outside their home tenant is "user:{id}@{home tenant}", so that every
// row of a cross-tenant action, filed under the tenant acted in, also
// names the tenant the actor belongs to.
func userActor(u store.User, acting string) string {
	if u.Superadmin && acting != u.TenantID {
		return "user:" + u.ID + "@" + u.TenantID
	}
	return "user:" + u.ID
}

// apiFunc is an authenticated JSON handler; a returned error becomes the
// response.
type apiFunc func(w http.ResponseWriter, r *http.Request, p Principal) error

// api serves f to a caller with an API credential (authenticate); an
// error, of the authentication or of f, is answered as JSON.
func (s *authenticator) api(f apiFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authenticate(r)
		if err == nil {
			err = f(w, r, p)
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	}
}
