// Command nanodems-tunnel reaches devices through a relay from an
// operator's machine. `run` serves a CLI session's bind plan on local
// 127.0.0.X:port addresses (docs/cli.md); `exec` runs one tool that sees
// the same addresses without admin rights; `connect` joins stdin/stdout to
// one device port.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/internal/cmdline"
	"github.com/nanodems/connector/internal/gctune"
	"github.com/nanodems/connector/mux"
	"github.com/nanodems/connector/netstack"
)

func main() {
	gctune.Apply()
	// First: exec re-runs this binary as its namespace helper.
	if code, ok := netstack.Child(); ok {
		os.Exit(code)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(program().Main(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const programName = "nanodems-tunnel"

func program() cmdline.Program {
	return cmdline.Program{
		Name:    programName,
		Summary: "reach the devices of a site through the relay, as if on its LAN",
		Commands: []cmdline.Command{
			{Name: "run", Args: "--token ops_… [--relay URL[,URL…]] [--ca-pin sha256:…] [--socks 127.0.0.1:1080] [--bind=false]", Summary: "serve every device of the session on 127.0.0.X:port", Run: run},
			{Name: "exec", Args: "[--token ops_…] [--relay URL[,URL…]] [--ca-pin sha256:…] -- TOOL ARGS", Summary: "run TOOL seeing 127.0.0.X:port, no admin rights (Linux)", Run: toolCmd("exec")},
			{Name: "tun", Args: "[--token ops_…] [--relay URL[,URL…]] [--ca-pin sha256:…] [NAME]", Summary: "the whole machine reaches the plan through a TUN device (root)", Run: toolCmd("tun")},
			{Name: "connect", Args: "--token nt_… [--relay URL[,URL…]] [--ca-pin sha256:…] HANDLE", Summary: "join stdin/stdout to one device port", Run: connect},
		},
		Footer: `Environment: NANODEMS_RELAY (--relay), NANODEMS_CLI_TOKEN (--token of run,
exec, tun), NANODEMS_TOKEN (--token of connect), NANODEMS_CA_PIN (--ca-pin).
The older form "run --token … exec -- TOOL" works too.`,
	}
}

// relayFlag adds --relay: one relay URL, or several of one installation
// (comma-separated or by repeating the flag), raced and failed over
// between (docs/cli.md). Its result goes into a Relay with setRelays.
func relayFlag(fs *flag.FlagSet) *[]string {
	return cmdline.List(fs, "relay", os.Getenv("NANODEMS_RELAY"), "the relay's API URL; several relays of one installation comma-separated or by repeating the flag (default $NANODEMS_RELAY)")
}

// setRelays puts the URLs of --relay into r: the first, and the others.
func setRelays(r *cli.Relay, urls []string) {
	if len(urls) > 0 {
		r.URL, r.URLs = urls[0], urls[1:]
	}
}

// sessionFlags are the flags of every command that opens a CLI session;
// the returned func, called after parsing, completes o.
func sessionFlags(fs *flag.FlagSet, o *cli.Options) (parsed func()) {
	relays := relayFlag(fs)
	fs.StringVar(&o.Relay.Token, "token", os.Getenv("NANODEMS_CLI_TOKEN"), "CLI session token (ops_…, default $NANODEMS_CLI_TOKEN)")
	fs.StringVar(&o.Relay.Pin, "ca-pin", os.Getenv("NANODEMS_CA_PIN"), "the relay API certificate's key pin when it is self-signed (default $NANODEMS_CA_PIN)")
	fs.DurationVar(&o.Refresh, "refresh", 0, "plan refresh interval (default: the relay's, 60s)")
	fs.StringVar(&o.Transport, "relay-transport", cli.TransportAuto, "how the tunnel reaches the relay: raw (smux over TLS, ALPN "+mux.CLIProtocol+"), ws (over a WebSocket, passes HTTPS proxies) or auto (raw, else ws)")
	return func() { setRelays(&o.Relay, *relays) }
}

func run(ctx context.Context, args []string) error {
	fs := cmdline.FlagSet(programName, "run", "--token ops_… [flags]")
	var o cli.Options
	parsed := sessionFlags(fs, &o)
	fs.StringVar(&o.Socks, "socks", "", "serve SOCKS5 and HTTP CONNECT on this loopback address, e.g. 127.0.0.1:1080")
	bind := fs.Bool("bind", true, "listen on each plan address 127.0.0.X:port")
	level := cmdline.LogLevel(fs, slog.LevelInfo)
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	parsed()
	if rest := fs.Args(); len(rest) > 0 && (rest[0] == "exec" || rest[0] == "tun") {
		return runTool(ctx, o, rest)
	}
	if fs.NArg() != 0 {
		return cmdline.Usagef("takes no arguments, got %q", fs.Args())
	}
	o.NoBind = !*bind
	o.Logger = terminalLogger(level)
	o.Out = os.Stdout
	return cli.Run(ctx, o)
}

// toolCmd is `exec` or `tun` with the session flags after the command.
func toolCmd(name string) func(context.Context, []string) error {
	return func(ctx context.Context, args []string) error {
		fs := cmdline.FlagSet(programName, name, "[flags] -- TOOL ARGS")
		var o cli.Options
		parsed := sessionFlags(fs, &o)
		if err := cmdline.Parse(fs, args); err != nil {
			return err
		}
		parsed()
		return runTool(ctx, o, append([]string{name}, fs.Args()...))
	}
}

// runTool serves the plan through a gVisor netstack in this process, with
// no OS binds, to the tool (exec) or the TUN device (tun) of argv; the
// tool's exit status becomes this program's.
func runTool(ctx context.Context, o cli.Options, argv []string) error {
	o.NoBind = true
	t, err := cli.Open(ctx, o)
	if err != nil {
		return err
	}
	code := netstack.Main(argv, t.DialPlan, t.PlanAddrs)
	t.Close()
	if code != 0 {
		return cmdline.ExitError{Code: code}
	}
	return nil
}

func connect(ctx context.Context, args []string) error {
	fs := cmdline.FlagSet(programName, "connect", "--token nt_… [flags] HANDLE")
	var r cli.Relay
	relays := relayFlag(fs)
	fs.StringVar(&r.Token, "token", os.Getenv("NANODEMS_TOKEN"), "API token (nt_…, default $NANODEMS_TOKEN)")
	fs.StringVar(&r.Pin, "ca-pin", os.Getenv("NANODEMS_CA_PIN"), "the relay API certificate's key pin when it is self-signed (default $NANODEMS_CA_PIN)")
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	setRelays(&r, *relays)
	if fs.NArg() != 1 || r.URL == "" {
		return cmdline.Usagef("needs --relay and exactly one handle")
	}
	return cli.Stdio(ctx, r, fs.Arg(0), os.Stdin, os.Stdout)
}

// terminalLogger shortens the time of each line to the clock: `run` is
// watched in a terminal.
func terminalLogger(level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				a.Value = slog.StringValue(a.Value.Time().Format(time.TimeOnly))
			}
			return a
		},
	}))
}
