// Command nanodems-demo runs a whole installation on loopback — a relay on
// embedded SQLite, an enrolled agent and stand-in cameras — and prints
// what an operator needs to try it. It is its own program so that the
// production relay links none of the demo's agent, CLI and test cameras.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/cmdline"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	exitWithParent()
	prog := cmdline.Program{
		Name:    "nanodems-demo",
		Summary: "a relay, an agent and stand-in cameras on loopback, to try the product",
		Default: "run",
		Commands: []cmdline.Command{
			{Name: "run", Args: "[--json] [--api-addr ADDR] [--agent-addr ADDR] [--rtsp-addr ADDR]", Summary: "start the demo (the default; Ctrl-C stops it and frees its ports)", Run: run},
		},
	}
	os.Exit(prog.Main(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string) error {
	fs := cmdline.FlagSet("nanodems-demo", "run", "[flags]")
	var o demo.Options
	asJSON := fs.Bool("json", false, "print one JSON object instead of text")
	fs.StringVar(&o.DataDir, "data-dir", "", "state directory (default: a temporary one, removed on exit)")
	fs.StringVar(&o.APIAddr, "api-addr", "127.0.0.1:9443", "operator API listener")
	fs.StringVar(&o.AgentAddr, "agent-addr", "127.0.0.1:8443", "agent listener")
	fs.StringVar(&o.RTSPAddr, "rtsp-addr", "127.0.0.1:9554", `RTSP gateway listener ("off" disables it)`)
	fs.StringVar(&o.DownloadsDir, "downloads-dir", defaultDownloadsDir(), `where the demo builds nanodems-tunnel and nanodems-agent for this machine, served at /downloads/ ("off": none)`)
	level := cmdline.LogLevel(fs, slog.LevelWarn)
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return cmdline.Usagef("takes no arguments, got %q", fs.Args())
	}
	o.Logger = cmdline.Logger(level)
	if o.DownloadsDir == "off" {
		o.DownloadsDir = ""
	}
	o.RTSPCamera = o.RTSPAddr != "off"
	o.CLISession = true
	d, err := demo.Start(ctx, o)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("%w\na port the demo wants is taken (another demo still running?); stop that one, or let the demo pick free ports:\n  go run ./cmd/nanodems-demo --api-addr 127.0.0.1:0 --agent-addr 127.0.0.1:0 --rtsp-addr 127.0.0.1:0", err)
		}
		return err
	}
	defer d.Close()
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(d.Info)
	} else {
		printInfo(os.Stdout, d.Info)
	}
	<-ctx.Done()
	return nil
}

func printInfo(w io.Writer, in demo.Info) {
	fmt.Fprintf(w, `nanodems demo is running (Ctrl-C stops it)

  console        %s
  email          %s
  password       %s

  relay API      %s
  API key pin    %s
  admin key      %s
  tenant / site  %s / %s
  API token      %s
  agent          %s (connected)
%s
  stand-in camera web UI    handle %s
  TCP echo target           handle %s

Open the camera's web UI through the relay (accept the self-signed
certificate; sign in as above, then log in to the camera as %s / %s):

  %s

Open a tunnel to the echo target (prints "hello" back):

  %s

Open a CLI session: every device of the site on 127.0.0.X:port
(docs/cli.md; add --socks 127.0.0.1:1080 where binds are not allowed):

  %s
%s`, in.ConsoleURL, in.UserEmail, in.UserPassword, in.RelayURL, in.CAPin, in.AdminKey, in.TenantID, in.SiteID, in.Token, in.AgentID, downloadsLine(in), in.HTTPHandle, in.EchoHandle,
		demo.CameraUser, demo.CameraPassword, in.BrowserURL, in.ConnectCommand, in.CLICommand, rtspHint(in))
}

// downloadsLine points at the demo's downloads, when it offers any.
func downloadsLine(in demo.Info) string {
	if in.DownloadsURL == "" {
		return ""
	}
	return "  downloads      " + in.DownloadsURL + " (nanodems-tunnel and nanodems-agent for this machine, building in the background)\n"
}

// defaultDownloadsDir is a directory that outlives the demo's temporary
// state, so that a second start finds its binaries built.
func defaultDownloadsDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "nanodems-demo", "downloads")
}

// rtspHint tells how to play the demo's RTSP camera, when there is one.
func rtspHint(in demo.Info) string {
	if in.RTSPURL == "" {
		return ""
	}
	return fmt.Sprintf(`
Play the synthetic RTSP camera through the gateway (handle %s; the
relay answers the camera's Digest login itself):

  ffplay -rtsp_transport tcp '%s'
`, in.RTSPHandle, in.RTSPURL)
}
