// Command nanodems-tunnel reaches devices through a relay from an
// operator's machine. `run` serves a CLI session's bind plan on local
// 127.0.0.X:port addresses (docs/cli.md); `connect` joins stdin/stdout to
// one device port.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/netstack"
)

const usage = `usage:
  nanodems-tunnel run --token ops_… [--relay URL] [--ca-pin sha256:…] [--socks 127.0.0.1:1080] [--refresh 60s] [--bind=false]
  nanodems-tunnel [run --token ops_… …] exec -- TOOL ARGS   (Linux, no admin: TOOL sees 127.0.0.X:port)
  sudo nanodems-tunnel [run --token ops_… …] tun [NAME]      (the whole machine, via a TUN device)
  nanodems-tunnel connect --relay URL --token nt_… [--ca-pin sha256:…] HANDLE`

func main() {
	netstack.MaybeChild() // first: exec re-runs this binary as its namespace helper
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = run(ctx, os.Args[2:])
	case "exec", "tun": // way (c); the session comes from $NANODEMS_CLI_TOKEN
		err = run(ctx, os.Args[1:])
	case "connect":
		err = connect(ctx, os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nanodems-tunnel:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var o cli.Options
	var bind bool
	fs.StringVar(&o.Relay.URL, "relay", os.Getenv("NANODEMS_RELAY"), "the relay's API URL (default $NANODEMS_RELAY)")
	fs.StringVar(&o.Relay.Token, "token", os.Getenv("NANODEMS_CLI_TOKEN"), "CLI session token (ops_…, default $NANODEMS_CLI_TOKEN)")
	fs.StringVar(&o.Relay.Pin, "ca-pin", "", "the relay API certificate's key pin when it is self-signed")
	fs.StringVar(&o.Socks, "socks", "", "serve SOCKS5 and HTTP CONNECT on this loopback address, e.g. 127.0.0.1:1080")
	fs.DurationVar(&o.Refresh, "refresh", 0, "plan refresh interval (default: the relay's, 60s)")
	fs.BoolVar(&bind, "bind", true, "listen on each plan address 127.0.0.X:port")
	fs.Parse(args)
	if fs.NArg() > 0 && (fs.Arg(0) == "exec" || fs.Arg(0) == "tun") {
		// Way (c): the tool's traffic to plan addresses goes through a
		// gVisor netstack in this process; no OS binds.
		o.NoBind = true
		t, err := cli.Open(ctx, o)
		if err != nil {
			return err
		}
		code := netstack.Main(fs.Args(), t.DialPlan, t.PlanAddrs)
		t.Close()
		os.Exit(code)
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("run takes no arguments, got %q", fs.Args())
	}
	o.NoBind = !bind
	o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				a.Value = slog.StringValue(a.Value.Time().Format(time.TimeOnly))
			}
			return a
		},
	}))
	o.Out = os.Stdout
	return cli.Run(ctx, o)
}

func connect(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("connect", flag.ExitOnError)
	var r cli.Relay
	fs.StringVar(&r.URL, "relay", os.Getenv("NANODEMS_RELAY"), "the relay's API URL")
	fs.StringVar(&r.Token, "token", os.Getenv("NANODEMS_TOKEN"), "API token (nt_…)")
	fs.StringVar(&r.Pin, "ca-pin", "", "the relay API certificate's key pin when it is self-signed")
	fs.Parse(args)
	if fs.NArg() != 1 || r.URL == "" {
		return fmt.Errorf("connect needs --relay and exactly one handle")
	}
	return cli.Stdio(ctx, r, fs.Arg(0), os.Stdin, os.Stdout)
}
