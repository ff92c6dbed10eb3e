package netstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Usage of the subcommands Main runs.
const Usage = `usage:
  nanodems-tunnel [session flags] exec [--] TOOL [ARGS...]
      run TOOL in a private network namespace where every plan address
      127.0.0.X:port is reachable as if local; no admin rights (Linux)
  nanodems-tunnel [session flags] tun [NAME]
      as admin: serve the plan to the whole machine through the TUN
      interface NAME (default nanodems0) until interrupted (Linux)`

// Main runs `exec [--] TOOL [ARGS...]` or `tun [NAME]` (args[0] is the
// subcommand) over dial and plan, and returns the process exit status:
// the tool's own for exec (125/126/127 when it could not run, as env(1)),
// 0 for tun once interrupted, 2 for a usage error, 1 for anything else.
//
// Main owns the signals while it runs. For exec, ^C and ^\ go to the tool
// (it shares the terminal's process group) and Main only waits for it to
// exit, so an interactive tool can use ^C itself; SIGTERM or SIGHUP is
// passed on to the tool. For tun, SIGINT or SIGTERM stops serving.
func Main(args []string, dial Dialer, plan Planner) int {
	return mainIO(args, dial, plan, os.Stderr)
}

func mainIO(args []string, dial Dialer, plan Planner, stderr io.Writer) int {
	fail := func(code int, err error) int {
		fmt.Fprintln(stderr, "nanodems-tunnel:", err)
		return code
	}
	if len(args) == 0 {
		fmt.Fprintln(stderr, Usage)
		return 2
	}
	switch args[0] {
	case "exec":
		argv := args[1:]
		if len(argv) > 0 && argv[0] == "--" {
			argv = argv[1:]
		}
		if len(argv) == 0 {
			fmt.Fprintln(stderr, Usage)
			return 2
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		sigs := make(chan os.Signal, 4)
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGHUP)
		defer signal.Stop(sigs)
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case s := <-sigs:
					if s == syscall.SIGTERM || s == syscall.SIGHUP {
						cancel()
						return
					}
				}
			}
		}()
		code, err := Exec(ctx, dial, plan, argv, ExecOptions{})
		if err != nil && !errors.Is(err, context.Canceled) {
			return fail(code, err)
		}
		return code
	case "tun":
		if len(args) > 2 {
			fmt.Fprintln(stderr, Usage)
			return 2
		}
		name := DefaultTunName
		if len(args) == 2 {
			name = args[1]
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := ServeTUN(ctx, name, dial, plan); err != nil {
			return fail(1, err)
		}
		return 0
	}
	fmt.Fprintln(stderr, Usage)
	return 2
}
