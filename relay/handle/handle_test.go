package handle_test

import (
	"errors"
	"regexp"
	"testing"

	"github.com/nanodems/connector/relay/handle"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want handle.Kind // 0: malformed
	}{
		{"h-AAAAAAAAAAAAAAAAAAAAAA", handle.Current},
		{"h-_____________________w", handle.Current}, // all ones: the last char carries 2 bits
		{"h-Zm9vYmFyYmF6cXV4LS1fXw", handle.Current},
		{"h-0123456789ab", handle.Legacy},
		{"h-ffffffffffff", handle.Legacy},

		{"", 0},
		{"h-", 0},
		{"h", 0},
		{"H-AAAAAAAAAAAAAAAAAAAAAA", 0}, // wrong prefix
		{"x-AAAAAAAAAAAAAAAAAAAAAA", 0},
		{"hAAAAAAAAAAAAAAAAAAAAAAA", 0},
		{"h-AAAAAAAAAAAAAAAAAAAAA", 0},   // 21 chars
		{"h-AAAAAAAAAAAAAAAAAAAAAAA", 0}, // 23 chars
		{"h-0123456789a", 0},             // 11 hex
		{"h-0123456789abc", 0},           // 13 hex
		{"h-_____________________x", 0},  // non-canonical trailing bits
		{"h-AAAAAAAAAAAAAAAAAAAAAB", 0},  // non-canonical trailing bits
		{"h-AAAAAAAAAAAAAAAAAAAA+/", 0},  // standard, not URL-safe, alphabet
		{"h-AAAAAAAAAAAAAAAAAAAA==", 0},  // padding
		{"h-AAAAAAAAAAAAAAAAAAAA\nA", 0},
		{"h-0123456789AB", 0}, // legacy handles are lowercase
		{"h-0123456789ag", 0},
		{"h-01234567 9ab", 0},
	} {
		k, err := handle.Parse(tc.s)
		if k != tc.want || (tc.want == 0) != errors.Is(err, handle.ErrMalformed) || tc.want != 0 && err != nil {
			t.Errorf("Parse(%q) = %v, %v; want kind %v", tc.s, k, err, tc.want)
		}
	}
}

func TestNew(t *testing.T) {
	shape := regexp.MustCompile(`^h-[A-Za-z0-9_-]{22}$`)
	seen := make(map[string]bool)
	for range 1000 {
		h := handle.New()
		if !shape.MatchString(h) {
			t.Fatalf("New() = %q", h)
		}
		if k, err := handle.Parse(h); k != handle.Current || err != nil {
			t.Fatalf("Parse(New()) = %v, %v", k, err)
		}
		if seen[h] {
			t.Fatalf("New() repeated %q", h)
		}
		seen[h] = true
	}
}

func TestLabelRoundTrip(t *testing.T) {
	for i := 0; i < 100; i++ {
		h := handle.New()
		l, err := handle.Label(h)
		if err != nil {
			t.Fatalf("Label(%q): %v", h, err)
		}
		back, err := handle.FromLabel(l)
		if err != nil || back != h {
			t.Fatalf("%q → %q → %q (%v)", h, l, back, err)
		}
	}
	// The last base32 character carries 3 bits of the handle and 2 zero
	// bits; a label with those bits set is not the handle's label.
	canonical := "h2222222222222222222222222y"
	if _, err := handle.FromLabel(canonical); err != nil {
		t.Fatalf("handle.FromLabel(%q): %v", canonical, err)
	}
	if h, err := handle.FromLabel("h22222222222222222222222222"); err == nil {
		t.Fatalf("non-canonical label accepted as %q", h)
	}
}
