package relay

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/nanodems/connector/relay/store"
)

// argon2id parameters: OWASP's second recommended set (19 MiB, 2 passes,
// 1 lane) keeps a sign-in near 30 ms on this 2-core machine while making
// offline guessing costly.
const (
	argonMemory  = 19 * 1024
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
)

// hashPassword returns a PHC-format argon2id string.
func hashPassword(pw string) string {
	salt := make([]byte, 16)
	rand.Read(salt)
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return phcString(salt, key)
}

func phcString(salt, key []byte) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// dummyPHC is what an unknown email's password is checked against, with
// the parameters of a real one: the answer then takes as long as for a
// known email with a wrong password, and timing does not tell which
// emails exist. No password matches an all-zero key but by a 2^-256 chance,
// and the check refuses the unknown email regardless.
var dummyPHC = phcString(make([]byte, 16), make([]byte, argonKeyLen))

// checkPassword verifies pw against a PHC argon2id string in constant
// time. hashed reports that the hash was computed: false only for a
// malformed PHC string.
func checkPassword(phc, pw string) (ok, hashed bool) {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false, false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false, false
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, true
}

// passwordGate bounds what password checks may cost. Each argon2id check
// takes 19 MiB and a core for ~40 ms (~300 ms under the race detector);
// unbounded, 50 concurrent wrong passwords took the relay from 80 to
// 920 MiB and /healthz to 699 ms. So at most one check runs per core, a
// check waits at most hashWait for its turn, and failures are rate-limited
// per client address and per account (relay/signinlimit.go).
type passwordGate struct {
	slots      chan struct{}
	waiters    atomic.Int32
	maxWaiters int32
	wait       time.Duration

	byAddr, byAccount *failLimiter

	hashes   atomic.Int64 // checks that computed a hash
	inFlight atomic.Int32
	peak     atomic.Int32 // most checks ever hashing at once
}

// hashWait is how long a check waits for a core before the relay answers
// 503: long enough to ride out a burst (a core checks ~25 passwords a
// second), short enough that a flood never holds a request for long.
const hashWait = time.Second

func newPasswordGate() *passwordGate {
	n := max(1, runtime.GOMAXPROCS(0))
	return &passwordGate{
		slots: make(chan struct{}, n),
		// More waiters than the cores can serve within hashWait would only
		// wait to be refused: refuse them at once.
		maxWaiters: int32(n * 25),
		wait:       hashWait,
		byAddr:     newFailLimiter(addrBurst, addrRefill, maxLimiterKeys),
		byAccount:  newFailLimiter(accountBurst, accountRefill, maxLimiterKeys),
	}
}

// errHashBusy answers a password check that found every core busy
// checking others for hashWait.
var errHashBusy = &tryLaterError{code: http.StatusServiceUnavailable, after: time.Second, msg: "the relay is busy checking passwords; try again in 1 s"}

// check runs checkPassword when a core is free.
func (g *passwordGate) check(ctx context.Context, phc, pw string) (bool, error) {
	select {
	case g.slots <- struct{}{}:
	default:
		if g.waiters.Add(1) > g.maxWaiters {
			g.waiters.Add(-1)
			return false, errHashBusy
		}
		t := time.NewTimer(g.wait)
		select {
		case g.slots <- struct{}{}:
			t.Stop()
			g.waiters.Add(-1)
		case <-t.C:
			g.waiters.Add(-1)
			return false, errHashBusy
		case <-ctx.Done():
			// The client left; nobody reads the answer, and a 500 would
			// only log noise.
			t.Stop()
			g.waiters.Add(-1)
			return false, errHashBusy
		}
	}
	defer func() { <-g.slots }()
	n := g.inFlight.Add(1)
	defer g.inFlight.Add(-1)
	for p := g.peak.Load(); n > p && !g.peak.CompareAndSwap(p, n); p = g.peak.Load() {
	}
	ok, hashed := checkPassword(phc, pw)
	if hashed {
		g.hashes.Add(1)
	}
	return ok, nil
}

// checkLogin verifies an email and password, for Basic auth and POST
// /login. It answers errBadCredential for a wrong password or an unknown
// email alike (after the same work), and a *tryLaterError when the client
// address or the account has failed too often, or every core is busy
// checking passwords.
func (s *authenticator) checkLogin(r *http.Request, email, pw string) (store.User, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	g := s.pw
	addr, acct := addrKey(r.RemoteAddr), accountKey(email)
	wait, lastAddr := g.byAddr.take(s.cfg.Now(), addr)
	if wait > 0 {
		return store.User{}, tooManySignins("from this address", wait)
	}
	wait, lastAcct := g.byAccount.take(s.cfg.Now(), acct)
	if wait > 0 {
		g.byAddr.refund(s.cfg.Now(), addr)
		return store.User{}, tooManySignins("for this account", wait)
	}
	refund := func() {
		g.byAddr.refund(s.cfg.Now(), addr)
		g.byAccount.refund(s.cfg.Now(), acct)
	}
	u, err := s.store.GetUserByEmail(r.Context(), email)
	// A disabled account signs in as no account does.
	known := err == nil && u.DisabledAt == nil
	phc := u.PasswordHash
	if errors.Is(err, store.ErrNotFound) {
		phc = dummyPHC
	} else if err != nil {
		refund()
		return store.User{}, fmt.Errorf("sign-in: %w", err)
	}
	ok, err := g.check(r.Context(), phc, pw)
	if err != nil {
		refund()
		return store.User{}, err
	}
	if ok && known {
		refund()
		return u, nil
	}
	// The failure keeps its attempt. Say so when it was a key's last, so an
	// operator sees guessing in the log at most once per refill, not once
	// per attempt.
	if lastAddr {
		s.log.Warn("sign-in failures: address locked out", "addr", addr, "next_attempt_in", g.byAddr.refill.String())
	}
	if lastAcct {
		s.log.Warn("sign-in failures: account locked out", "email", truncate(email, 254), "next_attempt_in", g.byAccount.refill.String())
	}
	return store.User{}, errBadCredential
}

func tooManySignins(from string, wait time.Duration) error {
	secs := retrySeconds(wait)
	return &tryLaterError{
		code:  http.StatusTooManyRequests,
		after: time.Duration(secs) * time.Second,
		msg:   fmt.Sprintf("too many failed sign-ins %s; try again in %d s", from, secs),
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
