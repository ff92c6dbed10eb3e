package dist

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/nanodems/connector/internal/atomicfile"
)

// modulePath is where the programs' mains live.
const modulePath = "github.com/nanodems/connector"

// BuildOptions say what to build and where.
type BuildOptions struct {
	// Out is the downloads directory; created if missing.
	Out string
	// Targets default to every program on every default platform.
	Targets []Target
	// Release, when set, is stamped as the binaries' version
	// (internal/version.Release); without it they report the module
	// version and commit the toolchain records.
	Release string
	// Dir is where the go command runs: a directory of this module's
	// source; default the current directory.
	Dir    string
	Logger *slog.Logger
}

// BuildDir is the subdirectory of a downloads directory where the go
// command writes, and keeps, its outputs. Kept, they let a second build
// with unchanged sources skip the link (the go command compares a
// binary's build ID with what it would build); a catalog never offers
// them, since their directory is not the downloads directory.
const BuildDir = ".build"

// ErrNoGo is returned when the go command is not on PATH.
var ErrNoGo = errors.New("the go command is not on PATH")

// Build cross-compiles each target static (CGO_ENABLED=0) and
// reproducibly (-trimpath, no symbol table), moves each binary into Out
// under its FileName with a rename (a catalog never sees a half-written
// binary), then writes Out/SHA256SUMS over everything Out offers.
func Build(ctx context.Context, o BuildOptions) ([]File, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return nil, ErrNoGo
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if len(o.Targets) == 0 {
		o.Targets = Targets(Programs, Platforms)
	}
	work := filepath.Join(o.Out, BuildDir)
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, fmt.Errorf("dist: %w", err)
	}
	ldflags := "-s -w"
	if o.Release != "" {
		if strings.ContainsAny(o.Release, " \t\n'\"") {
			return nil, fmt.Errorf("dist: release %q must be one word", o.Release)
		}
		ldflags += " -X " + modulePath + "/internal/version.Release=" + o.Release
	}
	for _, t := range o.Targets {
		name := t.FileName()
		o.Logger.Info("building", "file", name)
		cmd := exec.CommandContext(ctx, gobin, "build", "-trimpath", "-ldflags", ldflags, "-o", filepath.Join(work, name), modulePath+"/cmd/"+t.Program)
		cmd.Dir = o.Dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+t.OS, "GOARCH="+t.Arch)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("dist: build %s: %w\n%s", name, err, out)
		}
		if err := publish(filepath.Join(work, name), filepath.Join(o.Out, name)); err != nil {
			return nil, fmt.Errorf("dist: %w", err)
		}
	}
	c, err := OpenCatalog(o.Out)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	files, err := c.Files()
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(filepath.Join(o.Out, SumsName), Sums(files), 0o644); err != nil {
		return nil, fmt.Errorf("dist: %w", err)
	}
	return files, nil
}

// publish copies a built binary to dst through a temporary file and a
// rename.
func publish(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}
