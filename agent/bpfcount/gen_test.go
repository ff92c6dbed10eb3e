package bpfcount_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The committed objects and their Go bindings are what the //go:generate
// line of gen.go makes from bpf/count.c today: a change to the C that was
// not regenerated, or a regeneration that was not committed, fails here.
// bpf2go strips the clang version and the source directory from the
// objects, so the same Debian clang gives the same bytes on any machine.
func TestGeneratedUpToDate(t *testing.T) {
	for _, tool := range []string{"clang", "llvm-strip"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("CI installs clang and llvm (.ci/run), yet %s is missing: %v", tool, err)
			}
			t.Skipf("regenerating the BPF objects needs %s (Debian: clang, llvm, libbpf-dev): %v", tool, err)
		}
	}
	if _, err := os.Stat("/usr/include/bpf/bpf_helpers.h"); err != nil {
		t.Skipf("regenerating the BPF objects needs libbpf's headers (Debian: libbpf-dev): %v", err)
	}
	src, err := os.ReadFile("gen.go")
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, line := range strings.Split(string(src), "\n") {
		if rest, ok := strings.CutPrefix(line, "//go:generate go tool bpf2go "); ok {
			args = strings.Fields(rest)
		}
	}
	if args == nil {
		t.Fatal("gen.go has no //go:generate go tool bpf2go line")
	}
	out := t.TempDir()
	cmd := exec.Command("go", append([]string{"tool", "bpf2go", "-output-dir", out, "-go-package", "bpfcount"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, stderr.String())
	}
	made, err := filepath.Glob(filepath.Join(out, "count_*"))
	if err != nil || len(made) == 0 {
		t.Fatalf("bpf2go made nothing in %s (%v):\n%s", out, err, stderr.String())
	}
	for _, m := range made {
		name := filepath.Base(m)
		want, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(name)
		if err != nil {
			t.Errorf("%s is generated but not committed: %v", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what go generate makes now: run `go generate ./agent/bpfcount` and commit", name)
		}
	}
	committed, _ := filepath.Glob("count_*")
	if len(committed) != len(made) {
		t.Errorf("committed %v, generated %d files", committed, len(made))
	}
}
