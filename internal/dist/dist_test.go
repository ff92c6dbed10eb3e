package dist_test

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"debug/pe"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nanodems/connector/internal/dist"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFileNames(t *testing.T) {
	for _, tg := range dist.Targets(dist.Programs, dist.Platforms) {
		got, ok := dist.ParseFileName(tg.FileName())
		if !ok || got != tg {
			t.Errorf("ParseFileName(%q) = %v, %v; want %v", tg.FileName(), got, ok, tg)
		}
	}
	if n := (dist.Target{Program: "nanodems-tunnel", Platform: dist.Platform{OS: "windows", Arch: "amd64"}}).FileName(); n != "nanodems-tunnel-windows-amd64.exe" {
		t.Errorf("windows name %q", n)
	}
	for _, bad := range []string{
		"", "SHA256SUMS", ".build", "nanodems-relay-linux-amd64", "nanodems-tunnel-linux", "nanodems-tunnel-linux-",
		"nanodems-tunnel-windows-amd64", "nanodems-tunnel-linux-amd64.exe", "nanodems-tunnel-linux-amd64-x",
		"nanodems-tunnel-../../etc-passwd", "nanodems-tunnel-Linux-amd64", "nanodems-agent-linux-amd64/", "../nanodems-agent-linux-amd64",
	} {
		if tg, ok := dist.ParseFileName(bad); ok {
			t.Errorf("ParseFileName(%q) accepted as %v", bad, tg)
		}
	}
	if _, err := dist.ParsePlatforms("linux/amd64,windows"); err == nil || !strings.Contains(err.Error(), `"windows" is not os/arch`) {
		t.Errorf("ParsePlatforms of a bad pair: %v", err)
	}
	if p, err := dist.ParsePlatforms(" linux/arm64 , linux/arm64"); err != nil || len(p) != 1 || p[0].String() != "linux/arm64" {
		t.Errorf("ParsePlatforms: %v %v", p, err)
	}
	if _, err := dist.ParsePrograms("nanodems-relay"); err == nil {
		t.Error("ParsePrograms accepted nanodems-relay")
	}
}

// TestCatalog: only binaries named as FileName names are offered, with
// the sum of their bytes; a file rewritten in place gets its new sum; a
// link out of the directory is not followed.
func TestCatalog(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("nanodems-agent-linux-amd64", "agent")
	write("nanodems-tunnel-windows-amd64.exe", "tunnel")
	write("README", "not a binary")
	write(dist.SumsName, "stale sums are not the catalog's")
	os.Mkdir(filepath.Join(dir, "nanodems-tunnel-linux-arm64"), 0o755)
	outside := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(outside, []byte("secret"), 0o600)
	if err := os.Symlink(outside, filepath.Join(dir, "nanodems-tunnel-darwin-arm64")); err != nil {
		t.Fatal(err)
	}
	c, err := dist.OpenCatalog(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	files, err := c.Files()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"nanodems-agent-linux-amd64": "agent", "nanodems-tunnel-windows-amd64.exe": "tunnel"}
	if len(files) != len(want) {
		t.Fatalf("catalog offers %v; want only %v", files, want)
	}
	for _, f := range files {
		if f.SHA256 != sum(want[f.Name]) || f.Size != int64(len(want[f.Name])) {
			t.Errorf("%s: size %d sum %s; want %d %s", f.Name, f.Size, f.SHA256, len(want[f.Name]), sum(want[f.Name]))
		}
	}
	if files[0].Program != "nanodems-agent" || files[1].OS != "windows" || files[1].Arch != "amd64" {
		t.Errorf("order or fields: %+v", files)
	}
	wantSums := sum("agent") + "  nanodems-agent-linux-amd64\n" + sum("tunnel") + "  nanodems-tunnel-windows-amd64.exe\n"
	if got := string(dist.Sums(files)); got != wantSums {
		t.Errorf("Sums:\n%s\nwant\n%s", got, wantSums)
	}

	// Rewritten in place (same name, new bytes, new time): new sum, both
	// in the list and for Open.
	write("nanodems-agent-linux-amd64", "agent v2")
	os.Chtimes(filepath.Join(dir, "nanodems-agent-linux-amd64"), time.Now(), time.Now().Add(time.Hour))
	f, e, err := c.Open("nanodems-agent-linux-amd64")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if e.SHA256 != sum("agent v2") {
		t.Errorf("Open after rewrite: sum %s, want that of the new bytes", e.SHA256)
	}
	files, _ = c.Files()
	if files[0].SHA256 != sum("agent v2") {
		t.Errorf("Files after rewrite: sum %s", files[0].SHA256)
	}

	for _, name := range []string{"README", dist.SumsName, "nanodems-tunnel-darwin-arm64", "nanodems-tunnel-linux-arm64", "../secret", "nanodems-agent-linux-arm64"} {
		if f, _, err := c.Open(name); !errors.Is(err, dist.ErrNotOffered) && (err == nil || !strings.Contains(err.Error(), "escapes")) {
			if f != nil {
				f.Close()
			}
			t.Errorf("Open(%q) = %v; want refused", name, err)
		}
	}
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func needGo(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds binaries")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
}

// TestBuildHost builds both programs for this machine: they run and say
// their stamped version, they are static, SHA256SUMS checks with
// sha256sum, and a second build yields the same bytes.
func TestBuildHost(t *testing.T) {
	needGo(t)
	out := t.TempDir()
	host := dist.Platform{OS: runtime.GOOS, Arch: runtime.GOARCH}
	o := dist.BuildOptions{Out: out, Targets: dist.Targets(dist.Programs, []dist.Platform{host}), Release: "v0.0.0-disttest"}
	files, err := dist.Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("built %v; want two files", files)
	}
	for _, f := range files {
		bin := filepath.Join(out, f.Name)
		b, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		if h := sha256.Sum256(b); hex.EncodeToString(h[:]) != f.SHA256 {
			t.Errorf("%s: reported sum %s is not the file's", f.Name, f.SHA256)
		}
		v, err := exec.Command(bin, "version").CombinedOutput()
		if err != nil || !strings.HasPrefix(string(v), f.Program+" v0.0.0-disttest") {
			t.Errorf("%s version: %v %q", f.Name, err, v)
		}
		if runtime.GOOS == "linux" {
			ef, err := elf.Open(bin)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range ef.Progs {
				if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
					t.Errorf("%s is dynamically linked (program header %v)", f.Name, p.Type)
				}
			}
			ef.Close()
		}
	}
	if sums, err := exec.LookPath("sha256sum"); err == nil {
		cmd := exec.Command(sums, "--check", "--strict", dist.SumsName)
		cmd.Dir = out
		if b, err := cmd.CombinedOutput(); err != nil || strings.Count(string(b), ": OK") != 2 {
			t.Errorf("sha256sum --check: %v\n%s", err, b)
		}
	}
	again, err := dist.Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	for i := range files {
		if again[i].SHA256 != files[i].SHA256 {
			t.Errorf("%s: a second build of unchanged sources differs (%s, then %s)", files[i].Name, files[i].SHA256, again[i].SHA256)
		}
	}
}

// TestCrossBuildWindows is the one build for a foreign platform: a
// Windows amd64 executable.
func TestCrossBuildWindows(t *testing.T) {
	needGo(t)
	out := t.TempDir()
	tg := dist.Target{Program: "nanodems-tunnel", Platform: dist.Platform{OS: "windows", Arch: "amd64"}}
	files, err := dist.Build(context.Background(), dist.BuildOptions{Out: out, Targets: []dist.Target{tg}})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0].Name != "nanodems-tunnel-windows-amd64.exe" {
		t.Fatalf("built %v", files)
	}
	pf, err := pe.Open(filepath.Join(out, files[0].Name))
	if err != nil {
		t.Fatalf("not a PE executable: %v", err)
	}
	defer pf.Close()
	if pf.Machine != pe.IMAGE_FILE_MACHINE_AMD64 {
		t.Errorf("machine %#x; want amd64", pf.Machine)
	}
}

func TestBuildWithoutGo(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if _, err := dist.Build(context.Background(), dist.BuildOptions{Out: t.TempDir()}); !errors.Is(err, dist.ErrNoGo) {
		t.Errorf("Build without go: %v; want ErrNoGo", err)
	}
}
