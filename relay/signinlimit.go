package relay

import (
	"crypto/sha256"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Failed password attempts allowed before the relay answers 429, per
// client address and per account. A token bucket: a key holds up to burst
// attempts and regains one every refill; a success gives its attempt back,
// so only failures count.
//
//   - Per address, 20 then one every 3 s (20 a minute): a whole office
//     behind one NAT mistyping passwords never meets it, and one address
//     guesses at most 28,800 passwords a day however many accounts it tries.
//   - Per account, 10 then one every 30 s (2 a minute, 2,880 a day): it
//     stops guessing spread over many addresses. Its cost is that someone
//     hammering an account also locks its owner's password out for as long
//     as they keep going; API tokens and open sessions still work.
//
// A locked key is refused before its password is checked, so it costs no
// hashing, and the right password is refused too: checking it would let
// guessing go on.
const (
	addrBurst     = 20
	addrRefill    = 3 * time.Second
	accountBurst  = 10
	accountRefill = 30 * time.Second
	// maxLimiterKeys bounds each table: 10,000 keys of at most 32 bytes
	// (an address, an IPv6 /64 prefix or a SHA-256) and a bucket each are
	// about 1.5 MiB, whatever a spray of addresses or emails tries.
	maxLimiterKeys = 10000
)

// failLimiter is one table of token buckets, keyed by client address or by
// account.
type failLimiter struct {
	burst   float64
	refill  time.Duration
	maxKeys int

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time // when tokens was last brought up to date
}

func newFailLimiter(burst int, refill time.Duration, maxKeys int) *failLimiter {
	return &failLimiter{burst: float64(burst), refill: refill, maxKeys: maxKeys, buckets: make(map[string]*bucket)}
}

// level brings b up to date at now.
func (l *failLimiter) level(b *bucket, now time.Time) {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(l.burst, b.tokens+float64(d)/float64(l.refill))
		b.at = now
	}
}

// take spends one attempt of key. It answers 0 when the attempt may go
// ahead, else how long until one may; last reports that this attempt was
// the key's last before it is locked.
func (l *failLimiter) take(now time.Time, key string) (wait time.Duration, last bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.maxKeys {
			l.evict(now)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	l.level(b, now)
	if b.tokens < 1 {
		return time.Duration((1 - b.tokens) * float64(l.refill)), false
	}
	b.tokens--
	return 0, b.tokens < 1
}

// refund gives back an attempt that was not a failure (a success, or a
// check the relay could not run). A full bucket says nothing a missing one
// would not, so it is dropped.
func (l *failLimiter) refund(now time.Time, key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		return
	}
	l.level(b, now)
	b.tokens++
	if b.tokens >= l.burst {
		delete(l.buckets, key)
	}
}

// evict makes room for one key: of a few entries (map order is random),
// the one nearest to full, which is the least a spray of new keys can gain
// by pushing out.
func (l *failLimiter) evict(now time.Time) {
	var victim string
	best := -1.0
	n := 0
	for k, b := range l.buckets {
		l.level(b, now)
		if b.tokens > best {
			victim, best = k, b.tokens
		}
		if n++; n == 16 || best >= l.burst {
			break
		}
	}
	delete(l.buckets, victim)
}

func (l *failLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// addrKey is the limiter key of a client address: the IP, or for IPv6 its
// /64, since one host commonly holds a whole /64 and could otherwise take
// a fresh address per attempt.
func addrKey(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// accountKey is the limiter key of a sign-in email: a digest of it, so a
// megabyte-long email costs the table 32 bytes, and unknown emails are
// keyed like known ones (a 429 must not tell them apart).
func accountKey(email string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(email))))
	return string(sum[:])
}
