package fuzz

import (
	"encoding/base64"
	"errors"
	"testing"

	"github.com/nanodems/connector/relay/handle"
)

func FuzzHandle(f *testing.F) {
	for _, s := range []string{
		handle.New(),
		"h-AAAAAAAAAAAAAAAAAAAAAA",
		"h-_____________________w", // canonical: last char carries 2 bits
		"h-_____________________x", // non-canonical trailing bits
		"h-AAAAAAAAAAAAAAAAAAAAA=",
		"h-AAAAAAAAAAAAAAAAAAAA+/",
		"h-0123456789ab",
		"h-0123456789AB",
		"h-0123456789a",
		"H-0123456789ab",
		"h-",
		"",
		"h-\xff\xfe0123456789",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if k, err := handle.Parse(handle.New()); err != nil || k != handle.Current {
			t.Fatalf("Parse(New()) = %v, %v", k, err)
		}
		k, err := handle.Parse(s)
		switch k {
		case 0:
			if !errors.Is(err, handle.ErrMalformed) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrMalformed", s, err)
			}
			return
		case handle.Current:
			if len(s) != 24 || s[:2] != "h-" {
				t.Fatalf("Parse(%q) = Current", s)
			}
			b, derr := base64.RawURLEncoding.Strict().DecodeString(s[2:])
			if derr != nil || len(b) != 16 {
				t.Fatalf("Parse(%q) = Current, but it decodes to %d bytes, %v", s, len(b), derr)
			}
			if enc := "h-" + base64.RawURLEncoding.EncodeToString(b); enc != s {
				t.Fatalf("Parse(%q) = Current, but the canonical spelling is %q", s, enc)
			}
		case handle.Legacy:
			if len(s) != 14 || s[:2] != "h-" {
				t.Fatalf("Parse(%q) = Legacy", s)
			}
			for _, c := range []byte(s[2:]) {
				if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
					t.Fatalf("Parse(%q) = Legacy with byte %q", s, c)
				}
			}
		default:
			t.Fatalf("Parse(%q) = unknown kind %d", s, k)
		}
		if err != nil {
			t.Fatalf("Parse(%q) = %v with error %v", s, k, err)
		}
	})
}
