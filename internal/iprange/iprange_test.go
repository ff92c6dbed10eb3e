package iprange

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]struct {
		s string
		n int
	}{
		"10.0.0.7":                        {"10.0.0.7", 1},
		" 10.0.0.1 - 10.0.0.10 ":          {"10.0.0.1-10.0.0.10", 10},
		"192.168.1.0/24":                  {"192.168.1.1-192.168.1.254", 254},
		"192.168.1.77/24":                 {"192.168.1.1-192.168.1.254", 254},
		"10.1.0.0/22":                     {"10.1.0.1-10.1.3.254", 1022},
		"10.1.0.4/31":                     {"10.1.0.4-10.1.0.5", 2},
		"10.1.0.4/32":                     {"10.1.0.4", 1},
		"10.0.0.0-10.0.3.255":             {"10.0.0.0-10.0.3.255", 1024},
		"10.0.255.250-10.1.0.3":           {"10.0.255.250-10.1.0.3", 10},
		"255.255.255.255/32":              {"255.255.255.255", 1},
		"255.255.255.250-255.255.255.255": {"255.255.255.250-255.255.255.255", 6},
	} {
		r, err := Parse(in)
		if err != nil {
			t.Errorf("Parse(%q): %v", in, err)
			continue
		}
		if r.String() != want.s || r.Len() != want.n || len(r.Addrs()) != want.n {
			t.Errorf("Parse(%q) = %s (%d addresses, %d listed), want %s (%d)", in, r, r.Len(), len(r.Addrs()), want.s, want.n)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for in, tooLarge := range map[string]bool{
		"":                    false,
		"10.0.0.0/21":         true,
		"0.0.0.0/0":           true,
		"10.0.0.0-10.0.4.0":   true,
		"10.0.0.9-10.0.0.1":   false,
		"fe80::1":             false,
		"2001:db8::/120":      false,
		"10.0.0.1-":           false,
		"camera.local":        false,
		"10.0.0.256":          false,
		"10.0.0.0/33":         false,
		"10.0.0.1-10.0.0.2-3": false,
		"1.1.1.1 - 1.1.1.1 1111111111111111111111111111111111111111111111111": false,
	} {
		_, err := Parse(in)
		if err == nil {
			t.Errorf("Parse(%q) accepted", in)
			continue
		}
		if errors.Is(err, ErrTooLarge) != tooLarge {
			t.Errorf("Parse(%q): %v; too large: %v, want %v", in, err, errors.Is(err, ErrTooLarge), tooLarge)
		}
	}
}
