package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nanodems/connector/agent"
	"github.com/nanodems/connector/internal/cmdline"
)

// service registers the agent as a system service: `service install`,
// `service uninstall`, `service status`.
func service(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return cmdline.Usagef("needs install, uninstall or status")
	}
	verb, rest := args[0], args[1:]
	var do func(context.Context, agent.ServiceOptions) (string, error)
	switch verb {
	case "install":
		do = agent.InstallService
	case "uninstall":
		do = agent.UninstallService
	case "status":
		do = agent.ServiceStatus
	default:
		return cmdline.Usagef("service %q: needs install, uninstall or status", verb)
	}
	fs := cmdline.FlagSet(programName, "service "+verb, "[flags]")
	var o agent.ServiceOptions
	dir := dataDir(fs)
	fs.StringVar(&o.Binary, "binary", "", "the agent binary the service runs (default: this program)")
	fs.StringVar(&o.Root, "root", os.Getenv("NANODEMS_ROOT"), "write under this directory instead of / and run no service manager (default $NANODEMS_ROOT)")
	if err := cmdline.Parse(fs, rest); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return cmdline.Usagef("takes no arguments, got %q", fs.Args())
	}
	if o.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("service: this program's path: %w", err)
		}
		o.Binary = exe
	}
	var err error
	if o.Dir, err = filepath.Abs(*dir); err != nil {
		return err
	}
	msg, err := do(ctx, o)
	if err != nil {
		return err
	}
	fmt.Println(msg)
	return nil
}

// claim enrolls an agent that runs on the device itself, by the serial the
// device was pre-registered with.
func claim(ctx context.Context, args []string) error {
	fs := cmdline.FlagSet(programName, "claim", "--relay URL --serial S [flags]")
	var o agent.ClaimOptions
	fs.StringVar(&o.RelayURL, "relay", "", "the relay's API URL, https://host:port")
	fs.StringVar(&o.Serial, "serial", "", "this device's manufacturer serial, as registered on the relay")
	fs.StringVar(&o.Pin, "ca-pin", os.Getenv("NANODEMS_CA_PIN"), "the relay API certificate's key pin (sha256:…) when it is self-signed (default $NANODEMS_CA_PIN)")
	dir := dataDir(fs)
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	if o.RelayURL == "" || o.Serial == "" {
		return cmdline.Usagef("needs --relay and --serial")
	}
	o.Dir = *dir
	id, err := agent.Claim(ctx, o)
	if err != nil {
		return err
	}
	fmt.Printf("claimed device serial %s as agent %s of site %s; state in %s\nstart it with: nanodems-agent run --data-dir %s\n", o.Serial, id.AgentID, id.SiteID, o.Dir, o.Dir)
	return nil
}
