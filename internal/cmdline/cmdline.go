// Package cmdline gives the three programs one shape of command line: a
// program name followed by a subcommand, `help`/`--help` listing every
// subcommand, `version`, and `--log-level` on every subcommand that logs.
// Mains stay a table of subcommands; what a subcommand does lives in the
// product's packages.
package cmdline

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/nanodems/connector/internal/version"
)

// Command is one subcommand.
type Command struct {
	Name    string
	Args    string // synopsis of its arguments, e.g. "--token ops_… [--socks ADDR]"
	Summary string // one line
	// Run does the work. It returns an ExitError to choose the exit code,
	// flag.ErrHelp after printing its own usage, and any other error to
	// exit 1 with that error as the sentence.
	Run func(ctx context.Context, args []string) error
}

// Program is a program with subcommands.
type Program struct {
	Name     string
	Summary  string // what the program is for, one line
	Commands []Command
	// Default runs when the first argument is a flag or absent (the
	// relay's `serve`); "" makes a missing subcommand a usage error.
	Default string
	// Footer follows the command list in the usage (environment, examples).
	Footer string
}

// ExitError ends the program with Code and no message of its own (a tool
// run under `exec` passes its status through).
type ExitError struct{ Code int }

func (e ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// Main runs the subcommand named by args and returns the process's exit
// code: 0 on success, 1 when the subcommand failed (its error printed as
// one sentence on stderr), 2 for a usage error.
func (p Program) Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	name := p.Default
	if len(args) > 0 && (!strings.HasPrefix(args[0], "-") || isHelpOrVersion(args[0])) {
		name, args = args[0], args[1:]
	}
	switch name {
	case "":
		p.Usage(stderr)
		return 2
	case "help", "-h", "-help", "--help":
		if len(args) == 1 {
			if c, ok := p.lookup(args[0]); ok {
				return p.run(ctx, c, []string{"--help"}, stderr)
			}
		}
		p.Usage(stdout)
		return 0
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, p.Name, version.Get())
		return 0
	}
	c, ok := p.lookup(name)
	if !ok {
		fmt.Fprintf(stderr, "%s: unknown command %q\n\n", p.Name, name)
		p.Usage(stderr)
		return 2
	}
	return p.run(ctx, c, args, stderr)
}

func isHelpOrVersion(a string) bool {
	switch a {
	case "-h", "-help", "--help", "-version", "--version":
		return true
	}
	return false
}

func (p Program) lookup(name string) (Command, bool) {
	for _, c := range p.Commands {
		if c.Name == name {
			return c, true
		}
	}
	return Command{}, false
}

func (p Program) run(ctx context.Context, c Command, args []string, stderr io.Writer) int {
	err := c.Run(ctx, args)
	var ee ExitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ee):
		return ee.Code
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "%s %s: %v\n", p.Name, c.Name, err)
		return 2
	}
	fmt.Fprintf(stderr, "%s: %v\n", p.Name, err)
	return 1
}

// Usage prints the program's summary and every subcommand.
func (p Program) Usage(w io.Writer) {
	fmt.Fprintf(w, "%s — %s\n\nUsage:\n", p.Name, p.Summary)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range p.Commands {
		fmt.Fprintf(tw, "  %s %s %s\t%s\n", p.Name, c.Name, c.Args, c.Summary)
	}
	fmt.Fprintf(tw, "  %s version\tprint the version and commit\n", p.Name)
	fmt.Fprintf(tw, "  %s help [COMMAND]\tthis text, or a command's flags\n", p.Name)
	tw.Flush()
	if p.Footer != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimRight(p.Footer, "\n"))
	}
}

// usageError is a command line a subcommand cannot run: exit 2.
type usageError struct{ error }

// Usagef reports a command line that cannot run (missing or extra
// arguments); Main prints it and exits 2.
func Usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// FlagSet is a subcommand's flag set: errors are returned, not fatal, so
// Main decides the exit code.
func FlagSet(program, command, args string) *flag.FlagSet {
	fs := flag.NewFlagSet(program+" "+command, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s %s %s\n\nFlags:\n", program, command, args)
		printShown(fs)
	}
	return fs
}

// Parse parses args into fs; a bad flag is a usage error.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	return nil
}

// LogLevel adds --log-level to fs; an unknown level is a usage error. The
// level is set when fs is parsed.
func LogLevel(fs *flag.FlagSet, def slog.Level) *slog.LevelVar {
	lv, dv := new(slog.LevelVar), new(slog.LevelVar)
	dv.Set(def)
	fs.TextVar(lv, "log-level", dv, "debug, info, warn or error")
	return lv
}

// Logger logs text on stderr at level.
func Logger(level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// Env returns the environment variable name's value, or def.
func Env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
