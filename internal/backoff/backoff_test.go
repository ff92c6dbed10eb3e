package backoff

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Every wait stays within the doubling bound, the bound reaches Max and
// stays there, and Reset brings it back to Min.
func TestBounds(t *testing.T) {
	var b Backoff
	bound := Min
	for i := range 40 {
		for range 50 { // many draws at each step: jitter stays inside
			c := b
			if d := c.Next(); d < 0 || d > bound {
				t.Fatalf("attempt %d: wait %v outside [0, %v]", i, d, bound)
			}
		}
		b.Next()
		bound = min(2*bound, Max)
	}
	if bound != Max {
		t.Fatalf("bound %v after 40 attempts, want %v", bound, Max)
	}
	b.Reset()
	for range 50 {
		c := b
		if d := c.Next(); d > Min {
			t.Fatalf("after Reset: %v > %v", d, Min)
		}
	}
	b.Next()
	b.Next()
	b.Done(time.Now().Add(-Healthy))
	if b.n != 0 {
		t.Fatal("a session that lived Healthy did not reset the backoff")
	}
	b.Next()
	b.Done(time.Now())
	if b.n == 0 {
		t.Fatal("a session that ended at once reset the backoff")
	}
}

// The jitter is real: draws at the cap are spread, not one value.
func TestJitterSpreads(t *testing.T) {
	b := Backoff{n: 30}
	seen := map[time.Duration]bool{}
	var sum time.Duration
	const n = 1000
	for range n {
		c := b
		d := c.Next()
		seen[d] = true
		sum += d
	}
	if len(seen) < n/2 {
		t.Fatalf("%d distinct waits out of %d", len(seen), n)
	}
	if mean := sum / n; mean < Max/4 || mean > 3*Max/4 {
		t.Fatalf("mean wait %v, want about %v", mean, Max/2)
	}
}
