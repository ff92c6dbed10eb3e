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
	"github.com/nanodems/connector/internal/cmdline"
	"github.com/nanodems/connector/internal/gctune"
)

const programName = "nanodems-agent"

func main() {
	gctune.Apply()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	prog := cmdline.Program{
		Name:    programName,
		Summary: "the site's side: dials out to the relay and reaches the LAN devices it is allowed to",
		Commands: []cmdline.Command{
			{Name: "enroll", Args: "--relay URL[,URL…] --token et_… [--ca-pin sha256:…] [--data-dir DIR]", Summary: "exchange a site's enrollment token for this agent's certificate", Run: enroll},
			{Name: "run", Args: "[--data-dir DIR]", Summary: "keep the session to the relay open (until stopped)", Run: run},
			{Name: "claim", Args: "--relay URL --serial S [--ca-pin sha256:…] [--data-dir DIR]", Summary: "enroll an agent running on the device itself, by the device's registered serial", Run: claim},
			{Name: "service", Args: "install|uninstall|status [--data-dir DIR] [--binary PATH] [--root DIR]", Summary: "register the agent as a system service (systemd unit, Windows service)", Run: service},
		},
		Footer: "Environment: NANODEMS_AGENT_DIR (--data-dir), NANODEMS_CA_PIN (--ca-pin), NANODEMS_ROOT (service --root).",
	}
	os.Exit(prog.Main(ctx, os.Args[1:], os.Stdout, os.Stderr))
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

// dataDir adds --data-dir, the state directory flag of all three programs,
// and --dir, its older name.
func dataDir(fs *flag.FlagSet) *string {
	dir := fs.String("data-dir", defaultDir(), "state directory: certificate, key, allowlist (default $NANODEMS_AGENT_DIR)")
	fs.Func("dir", "the same as --data-dir", func(v string) error { *dir = v; return nil })
	return dir
}

func enroll(ctx context.Context, args []string) error {
	fs := cmdline.FlagSet(programName, "enroll", "--relay URL[,URL…] --token et_… [flags]")
	var o agent.EnrollOptions
	relays := cmdline.List(fs, "relay", "", "the relay's API URL, https://host:port; several relays of one installation comma-separated or by repeating the flag (enrolls at the first that answers, keeps them all)")
	fs.StringVar(&o.Token, "token", "", "the site's enrollment token (et_…)")
	fs.StringVar(&o.Pin, "ca-pin", os.Getenv("NANODEMS_CA_PIN"), "the relay API certificate's key pin (sha256:…) when it is self-signed (default $NANODEMS_CA_PIN)")
	dir := dataDir(fs)
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	if len(*relays) == 0 || o.Token == "" {
		return cmdline.Usagef("needs --relay and --token")
	}
	o.RelayURL, o.RelayURLs = (*relays)[0], (*relays)[1:]
	o.Dir = *dir
	id, err := agent.Enroll(ctx, o)
	if err != nil {
		return err
	}
	fmt.Printf("enrolled as agent %s of site %s; state in %s\nstart it with: nanodems-agent run --data-dir %s\n", id.AgentID, id.SiteID, o.Dir, o.Dir)
	return nil
}

func run(ctx context.Context, args []string) error {
	fs := cmdline.FlagSet(programName, "run", "[flags]")
	var cfg agent.Config
	dir := dataDir(fs)
	relayAddrs := cmdline.List(fs, "relay-addr", "", "override the agent listener addresses from enrollment: host:port, several comma-separated or by repeating the flag (raced, Happy Eyeballs)")
	fs.DurationVar(&cfg.DialTimeout, "dial-timeout", 0, "LAN dial timeout (default 5s)")
	fs.Int64Var(&cfg.DedicatedRate, "dedicated-rate", 0, "bytes/s (both directions) above which a tunnel moves to a dedicated connection (default 8 MiB/s; -1: never)")
	fs.BoolVar(&cfg.AllowLoopback, "allow-loopback", false, "also dial loopback, link-local (cloud metadata included), unspecified and multicast addresses and this host's own addresses, refused by default")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9101 (default: off; docs/metrics.md)")
	fs.StringVar(&cfg.Counting, "counting", agent.CountingAuto, "where to count tunnel bytes: auto (in the kernel with eBPF when allowed: root, or CAP_BPF and CAP_NET_ADMIN; else userspace), userspace, or off (no byte counts: the baseline of perf -counting)")
	level := cmdline.LogLevel(fs, slog.LevelInfo)
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return cmdline.Usagef("takes no arguments, got %q", fs.Args())
	}
	cfg.Dir = *dir
	cfg.RelayAddrs = *relayAddrs
	cfg.Logger = cmdline.Logger(level)
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	// As a Windows service, the service control manager's Stop ends ctx.
	return agent.RunService(ctx, a.Run)
}
