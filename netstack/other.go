//go:build !linux

package netstack

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"
)

// The TUN and namespace ways are Linux's; elsewhere the CLI serves plan
// addresses through its OS listeners and SOCKS5 / HTTP CONNECT port.
var errLinuxOnly = errors.New("needs Linux (TUN device and network namespaces); use the SOCKS5 / HTTP CONNECT port of `nanodems-tunnel run` instead")

// ExecOptions configure Exec (Linux only).
type ExecOptions struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Env            []string
	Logger         *slog.Logger
	TunDevice      string
	Self           string
	KillDelay      time.Duration
}

// Exit codes of Exec when the tool never ran.
const (
	ExitSetup      = 125
	ExitCannotExec = 126
	ExitNotFound   = 127
)

// DefaultTunName is the host interface of --tun.
const DefaultTunName = "nanodems0"

// Child reports no helper mode off Linux: there is none.
func Child() (code int, ok bool) { return 0, false }

// Exec is Linux only.
func Exec(ctx context.Context, dial Dialer, plan Planner, argv []string, opt ExecOptions) (int, error) {
	return ExitSetup, errors.New("exec " + errLinuxOnly.Error())
}

// ServeTUN is Linux only.
func ServeTUN(ctx context.Context, name string, dial Dialer, plan Planner) error {
	return errors.New("--tun " + errLinuxOnly.Error())
}
