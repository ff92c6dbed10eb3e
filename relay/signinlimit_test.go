package relay

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// A spray of fresh keys cannot grow the table past its bound, nor push out
// a locked key to free it.
func TestFailLimiterBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newFailLimiter(addrBurst, addrRefill, 1000)
	for range addrBurst {
		if wait, _ := l.take(now, "locked"); wait != 0 {
			t.Fatalf("attempt within the burst refused: wait %v", wait)
		}
	}
	if wait, _ := l.take(now, "locked"); wait != addrRefill {
		t.Fatalf("attempt past the burst: wait %v, want %v", wait, addrRefill)
	}
	for i := range 50_000 {
		l.take(now, fmt.Sprintf("spray-%d", i))
		if n := l.len(); n > 1000 {
			t.Fatalf("after %d keys the table holds %d, bound 1000", i+1, n)
		}
	}
	if wait, _ := l.take(now, "locked"); wait != addrRefill {
		t.Fatalf("locked key after the spray: wait %v, want %v", wait, addrRefill)
	}
	// A refund after a success frees the entry it made.
	l2 := newFailLimiter(accountBurst, accountRefill, 10)
	l2.take(now, "ok")
	l2.refund(now, "ok")
	if n := l2.len(); n != 0 {
		t.Fatalf("a refunded key is kept: %d entries", n)
	}
}

func TestAddrKey(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:5000":           "127.0.0.1",
		"[::ffff:10.0.0.7]:1":      "10.0.0.7",
		"[2001:db8:1:2:3:4:5:6]:9": "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:9": "2001:db8:1:2::/64",
		"[fe80::1%eth0]:443":       "fe80::/64",
	} {
		if got := addrKey(in); got != want {
			t.Errorf("addrKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// The dummy hash of unknown emails parses and costs a real check.
func TestDummyPHCIsARealHash(t *testing.T) {
	ok, hashed := checkPassword(dummyPHC, "anything")
	if ok || !hashed {
		t.Fatalf("checkPassword(dummyPHC) = ok %v, hashed %v; want false, true", ok, hashed)
	}
	genuine, dummy := strings.Split(hashPassword("x"), "$"), strings.Split(dummyPHC, "$")
	if len(genuine) != len(dummy) || strings.Join(genuine[:4], "$") != strings.Join(dummy[:4], "$") || len(genuine[5]) != len(dummy[5]) {
		t.Fatalf("dummy %q does not have the parameters of a real hash %q", dummyPHC, strings.Join(genuine, "$"))
	}
}
