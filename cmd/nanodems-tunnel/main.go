// Command nanodems-tunnel reaches devices through a relay from an
// operator's machine. `connect` joins stdin/stdout to one device port.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/nanodems/connector/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) < 2 || os.Args[1] != "connect" {
		fmt.Fprintln(os.Stderr, "usage: nanodems-tunnel connect --relay URL --token nt_… [--ca-pin sha256:…] HANDLE")
		os.Exit(2)
	}
	if err := connect(ctx, os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "nanodems-tunnel:", err)
		os.Exit(1)
	}
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
