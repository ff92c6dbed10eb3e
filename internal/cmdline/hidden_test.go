package cmdline

import (
	"strings"
	"testing"
	"time"
)

// A hidden flag parses like any other and is absent from the usage text,
// which still lists the others with their defaults.
func TestHideFlag(t *testing.T) {
	fs := FlagSet("prog", "serve", "[flags]")
	var out strings.Builder
	fs.SetOutput(&out)
	tick := fs.Duration("job-tick", 0, "for tests")
	fs.String("data-dir", "nanodems-data", "state directory")
	Hide(fs, "job-tick")
	if err := Parse(fs, []string{"--job-tick", "1s"}); err != nil || *tick != time.Second {
		t.Fatalf("--job-tick 1s: %v, %v", *tick, err)
	}
	fs.Usage()
	if u := out.String(); strings.Contains(u, "job-tick") || !strings.Contains(u, `-data-dir string`) || !strings.Contains(u, `(default "nanodems-data")`) {
		t.Fatalf("usage text:\n%s", u)
	}
}
