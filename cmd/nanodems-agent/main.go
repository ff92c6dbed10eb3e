// Command nanodems-agent is the site-side bridge. `enroll` exchanges a
// site's one-shot token for a certificate; `run` keeps the session open.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/nanodems/connector/agent"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: nanodems-agent enroll --relay URL --token T [--ca-pin sha256:…] | run")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "enroll":
		err = enroll(ctx, os.Args[2:])
	case "run":
		err = run(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q; use enroll or run", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nanodems-agent:", err)
		os.Exit(1)
	}
}

func defaultDir() string {
	if d := os.Getenv("NANODEMS_AGENT_DIR"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/lib/nanodems-agent"
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "nanodems-agent"
	}
	return filepath.Join(d, "nanodems-agent")
}

func enroll(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("enroll", flag.ExitOnError)
	var o agent.EnrollOptions
	fs.StringVar(&o.RelayURL, "relay", "", "the relay's API URL, https://host:port")
	fs.StringVar(&o.Token, "token", "", "the site's enrollment token (et_…)")
	fs.StringVar(&o.Pin, "ca-pin", "", "the relay API certificate's key pin (sha256:…) when it is self-signed")
	fs.StringVar(&o.Dir, "dir", defaultDir(), "state directory")
	fs.Parse(args)
	if o.RelayURL == "" || o.Token == "" {
		return fmt.Errorf("enroll needs --relay and --token")
	}
	id, err := agent.Enroll(ctx, o)
	if err != nil {
		return err
	}
	fmt.Printf("enrolled as agent %s of site %s; state in %s\nstart it with: nanodems-agent run --dir %s\n", id.AgentID, id.SiteID, o.Dir, o.Dir)
	return nil
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var cfg agent.Config
	fs.StringVar(&cfg.Dir, "dir", defaultDir(), "state directory written by enroll")
	fs.StringVar(&cfg.RelayAddr, "relay-addr", "", "override the agent listener address from enrollment")
	fs.DurationVar(&cfg.DialTimeout, "dial-timeout", 0, "LAN dial timeout (default 5s)")
	fs.Int64Var(&cfg.DedicatedRate, "dedicated-rate", 0, "bytes/s (both directions) above which a tunnel moves to a dedicated connection (default 8 MiB/s; -1: never)")
	fs.BoolVar(&cfg.AllowLoopback, "allow-loopback", false, "also dial loopback, link-local (cloud metadata included), unspecified and multicast addresses and this host's own addresses, refused by default")
	fs.Parse(args)
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}
