package demo

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"runtime"

	"github.com/nanodems/connector/internal/dist"
)

// downloadBuild is the background build of the demo's downloads.
type downloadBuild struct {
	dir    string
	cancel context.CancelFunc
	done   chan struct{} // closed when the build ended; nil when none runs
	err    error         // its result, once done is closed
}

// prepareDownloads makes the downloads directory and returns it for the
// relay, or "" when the go command is missing: the demo then says so and
// offers no downloads rather than stale or absent ones.
func (d *Demo) prepareDownloads(dir string, log *slog.Logger) string {
	if _, err := exec.LookPath("go"); err != nil {
		log.Warn("the go command is not on PATH, so the demo cannot build nanodems-tunnel and nanodems-agent: its download list is empty")
		return ""
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Warn("demo downloads directory; the demo offers no downloads", "dir", dir, "err", err)
		return ""
	}
	d.downloads.dir = dir
	return dir
}

// buildDownloads starts building this platform's two binaries into the
// directory prepareDownloads made. The relay rescans the directory on
// every request, and each binary lands with a rename, so downloads
// appear as they are ready while the demo already runs.
func (d *Demo) buildDownloads(log *slog.Logger) {
	if d.downloads.dir == "" {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.downloads.cancel, d.downloads.done = cancel, make(chan struct{})
	host := dist.Platform{OS: runtime.GOOS, Arch: runtime.GOARCH}
	go func() {
		defer close(d.downloads.done)
		_, err := dist.Build(ctx, dist.BuildOptions{Out: d.downloads.dir, Targets: dist.Targets(dist.Programs, []dist.Platform{host}), Logger: log})
		if err != nil && ctx.Err() == nil {
			log.Warn("the demo could not build its downloads (it builds from this module's source: run it from the checkout)", "err", err)
		}
		d.downloads.err = err
	}()
}

// errNoDownloads is what Downloads reports when the demo builds none.
var errNoDownloads = errors.New("demo: no downloads (no Options.DownloadsDir, or no go command)")

// Downloads waits until the demo's downloads are built and returns the
// build's result.
func (d *Demo) Downloads(ctx context.Context) error {
	if d.downloads.done == nil {
		return errNoDownloads
	}
	select {
	case <-d.downloads.done:
		return d.downloads.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop cancels a running build and waits for it.
func (b *downloadBuild) stop() {
	if b.done != nil {
		b.cancel()
		<-b.done
	}
}
