package cmdline

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func testProgram(ran *[]string) Program {
	return Program{
		Name:    "prog",
		Summary: "does things",
		Default: "serve",
		Commands: []Command{
			{Name: "serve", Args: "[--port N]", Summary: "serve", Run: func(ctx context.Context, args []string) error {
				fs := FlagSet("prog", "serve", "[--port N]")
				port := fs.Int("port", 1, "port")
				LogLevel(fs, slog.LevelWarn)
				if err := Parse(fs, args); err != nil {
					return err
				}
				*ran = append(*ran, "serve", strings.Repeat("x", *port))
				return nil
			}},
			{Name: "fail", Summary: "fails", Run: func(ctx context.Context, args []string) error { return errors.New("it broke") }},
			{Name: "code", Summary: "exits 7", Run: func(ctx context.Context, args []string) error { return ExitError{Code: 7} }},
			{Name: "args", Summary: "wants one", Run: func(ctx context.Context, args []string) error { return Usagef("needs exactly one handle") }},
		},
	}
}

func TestProgramMain(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		out, err string // substrings of stdout and stderr
		ran      string
	}{
		{args: nil, code: 0, ran: "serve x"},
		{args: []string{"--port", "3"}, code: 0, ran: "serve xxx"},
		{args: []string{"serve", "--port", "2"}, code: 0, ran: "serve xx"},
		{args: []string{"help"}, code: 0, out: "prog args"},
		{args: []string{"--help"}, code: 0, out: "prog fail"},
		{args: []string{"-h"}, code: 0, out: "prog version"},
		// A command's own usage goes to the process's stderr (package flag).
		{args: []string{"help", "serve"}, code: 0},
		{args: []string{"serve", "--help"}, code: 0},
		{args: []string{"version"}, code: 0, out: "prog "},
		{args: []string{"--version"}, code: 0, out: "go1."},
		{args: []string{"nope"}, code: 2, err: `unknown command "nope"`},
		{args: []string{"serve", "--bogus"}, code: 2, err: "flag provided but not defined"},
		{args: []string{"serve", "--log-level", "debug"}, code: 0, ran: "serve x"},
		{args: []string{"serve", "--log-level", "loud"}, code: 2, err: "log-level"},
		{args: []string{"fail"}, code: 1, err: "prog: it broke"},
		{args: []string{"code"}, code: 7},
		{args: []string{"args"}, code: 2, err: "prog args: needs exactly one handle"},
	} {
		var ran []string
		var stdout, stderr bytes.Buffer
		code := testProgram(&ran).Main(context.Background(), tc.args, &stdout, &stderr)
		if code != tc.code {
			t.Errorf("%q: exit %d, want %d (stderr %q)", tc.args, code, tc.code, stderr.String())
		}
		if !strings.Contains(stdout.String(), tc.out) || !strings.Contains(stderr.String(), tc.err) {
			t.Errorf("%q: stdout %q stderr %q, want %q and %q", tc.args, stdout.String(), stderr.String(), tc.out, tc.err)
		}
		if got := strings.Join(ran, " "); got != tc.ran {
			t.Errorf("%q: ran %q, want %q", tc.args, got, tc.ran)
		}
	}
}

func TestNoDefaultIsUsageError(t *testing.T) {
	p := testProgram(new([]string))
	p.Default = ""
	var stdout, stderr bytes.Buffer
	if code := p.Main(context.Background(), nil, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "Usage:") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}
