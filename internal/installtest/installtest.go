// Package installtest runs the relay's .sh installer for tests: it builds
// the agent download the installer fetches, from this source as the
// relay's downloads are built (internal/dist), and runs the script as
// root in a mount namespace where systemd is absent, into a temporary
// root. The relay's installer test and the console's onboarding walk
// share it.
package installtest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/nanodems/connector/internal/dist"
)

// BuildAgentDownload fills a downloads directory with nanodems-agent for
// this machine, built from this module, and its SHA256SUMS. It skips t
// without the go command.
func BuildAgentDownload(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command to build the agent download")
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	host := dist.Platform{OS: runtime.GOOS, Arch: runtime.GOARCH}
	if _, err := dist.Build(ctx, dist.BuildOptions{Out: dir, Dir: root, Targets: dist.Targets([]string{"nanodems-agent"}, []dist.Platform{host})}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// moduleRoot is the directory of the go.mod above the working directory
// (a test runs in its package's directory).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = up
	}
}

// NeedMountNamespace skips (fails with CI set) where the test cannot make
// a mount namespace: it needs root and unshare(1).
func NeedMountNamespace(t testing.TB) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the .sh installer is for Linux")
	}
	err := exec.Command("unshare", "--mount", "true").Run()
	if err == nil {
		return
	}
	if ci := os.Getenv("CI"); ci == "" || ci == "false" || ci == "0" {
		t.Skipf("cannot make a mount namespace (needs root and unshare): %v", err)
	}
	t.Fatalf("CI=%s but cannot make a mount namespace: %v", os.Getenv("CI"), err)
}

// Run runs a .sh installer as root in a new mount namespace with a tmpfs
// over /run, so that no systemd is running there whatever the host runs,
// and NANODEMS_ROOT=root. It returns the installer's output.
func Run(t testing.TB, script, root string, args ...string) (string, error) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "install.sh")
	if err := os.WriteFile(f, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", append([]string{"--mount", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs tmpfs /run && exec sh "$@"`, "sh", f}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + root, "NANODEMS_ROOT=" + root}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Paths of what the installer installs under its root.
const (
	Binary   = "usr/local/bin/nanodems-agent"
	StateDir = "var/lib/nanodems-agent"
	UnitFile = "etc/systemd/system/nanodems-agent.service"
)
