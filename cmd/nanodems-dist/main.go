// Command nanodems-dist fills a relay's downloads directory
// (`nanodems-relay serve --downloads-dir`): nanodems-tunnel and
// nanodems-agent cross-compiled, static, for every platform the relay
// offers, and their SHA256SUMS. It runs the go command in this module's
// source: `go run ./cmd/nanodems-dist -out DIR` from a checkout.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/nanodems/connector/internal/cmdline"
	"github.com/nanodems/connector/internal/dist"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	prog := cmdline.Program{
		Name:    "nanodems-dist",
		Summary: "build the relay's downloads directory: nanodems-tunnel and nanodems-agent per platform, with SHA256SUMS",
		Default: "build",
		Commands: []cmdline.Command{
			{Name: "build", Args: "-out DIR [-platforms os/arch,…] [-programs …] [-release vX.Y.Z]", Summary: "cross-compile into DIR (the default command)", Run: build},
		},
	}
	os.Exit(prog.Main(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func build(ctx context.Context, args []string) error {
	fs := cmdline.FlagSet("nanodems-dist", "build", "[flags]")
	out := fs.String("out", "", "the downloads directory to fill (required)")
	platforms := fs.String("platforms", "", "comma list of os/arch (default: linux/amd64,linux/arm64,darwin/arm64,darwin/amd64,windows/amd64)")
	programs := fs.String("programs", "", "comma list of programs (default: nanodems-tunnel,nanodems-agent)")
	release := fs.String("release", "", "version the binaries report (default: the module version and commit the toolchain records)")
	level := cmdline.LogLevel(fs, slog.LevelInfo)
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return cmdline.Usagef("takes no arguments, got %q", fs.Args())
	}
	if *out == "" {
		return cmdline.Usagef("-out DIR is required")
	}
	plats, err := dist.ParsePlatforms(*platforms)
	if err != nil {
		return cmdline.Usagef("-platforms: %v", err)
	}
	progs, err := dist.ParsePrograms(*programs)
	if err != nil {
		return cmdline.Usagef("-programs: %v", err)
	}
	files, err := dist.Build(ctx, dist.BuildOptions{Out: *out, Targets: dist.Targets(progs, plats), Release: *release, Logger: cmdline.Logger(level)})
	if err != nil {
		return err
	}
	for _, f := range files {
		fmt.Printf("%s  %s  %d bytes\n", f.SHA256, f.Name, f.Size)
	}
	return nil
}
