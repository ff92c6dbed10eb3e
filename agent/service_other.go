//go:build !linux && !windows

package agent

import (
	"context"
	"fmt"
	"runtime"
)

var errNoService = fmt.Errorf("agent service: not supported on %s; run `nanodems-agent run` under the system's own supervisor", runtime.GOOS)

// InstallService is not available on this system.
func InstallService(context.Context, ServiceOptions) (string, error) { return "", errNoService }

// UninstallService is not available on this system.
func UninstallService(context.Context, ServiceOptions) (string, error) { return "", errNoService }

// ServiceStatus is not available on this system.
func ServiceStatus(context.Context, ServiceOptions) (string, error) { return "", errNoService }

// RunService calls run.
func RunService(ctx context.Context, run func(context.Context) error) error { return run(ctx) }
