package cmdline

import (
	"flag"
	"io"
	"slices"
	"testing"
)

// A list flag takes commas, repeats, or both; its first use replaces the
// default (from the environment) rather than adding to it.
func TestListFlag(t *testing.T) {
	for _, tc := range []struct {
		def  string
		args []string
		want []string
	}{
		{"", nil, nil},
		{"https://env:9443", nil, []string{"https://env:9443"}},
		{"https://env:9443", []string{"--relay", "https://a:9443, https://b:9443"}, []string{"https://a:9443", "https://b:9443"}},
		{"", []string{"--relay", "https://a:9443", "--relay", "https://b:9443,https://c:9443"}, []string{"https://a:9443", "https://b:9443", "https://c:9443"}},
		{"a,,b,", nil, []string{"a", "b"}},
	} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		got := List(fs, "relay", tc.def, "")
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(*got, tc.want) {
			t.Errorf("default %q, args %q: %q, want %q", tc.def, tc.args, *got, tc.want)
		}
	}
}
