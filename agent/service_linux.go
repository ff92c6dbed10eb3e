package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/nanodems/connector/internal/atomicfile"
)

// unitPath is where the unit file goes under root.
func unitPath(root string) string {
	return filepath.Join(root, "/etc/systemd/system", UnitName)
}

// systemdRunning reports whether systemd is the running init (what
// sd_booted checks), and systemctl is there to talk to it.
func systemdRunning(root string) bool {
	if root != "" {
		return false
	}
	if fi, err := os.Stat("/run/systemd/system"); err != nil || !fi.IsDir() {
		return false
	}
	_, err := exec.LookPath("systemctl")
	return err == nil
}

func systemctl(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "systemctl", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// InstallService writes the systemd unit and, where systemd runs,
// reloads it and enables it for boot. It does not start it: the
// installer starts or restarts it once the binary is in place. Running it
// again rewrites the unit (a moved binary or state directory).
func InstallService(ctx context.Context, o ServiceOptions) (string, error) {
	if err := o.check(); err != nil {
		return "", err
	}
	p := unitPath(o.Root)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", fmt.Errorf("agent service: %w", err)
	}
	if err := atomicfile.Write(p, []byte(SystemdUnit(o)), 0o644); err != nil {
		return "", fmt.Errorf("agent service: write %s: %w", p, err)
	}
	if !systemdRunning(o.Root) {
		return fmt.Sprintf("wrote %s; systemd is not running here, start the agent with: %s run --data-dir %s", p, o.Binary, o.Dir), nil
	}
	if err := systemctl(ctx, "daemon-reload"); err != nil {
		return "", err
	}
	if err := systemctl(ctx, "enable", UnitName); err != nil {
		return "", err
	}
	return fmt.Sprintf("wrote %s and enabled it; start it with: systemctl start %s", p, UnitName), nil
}

// UninstallService stops and disables the unit where systemd runs, and
// removes its file. The state directory (the agent's identity) stays.
func UninstallService(ctx context.Context, o ServiceOptions) (string, error) {
	p := unitPath(o.Root)
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return "not installed: no " + p, nil
	}
	if systemdRunning(o.Root) {
		if err := systemctl(ctx, "disable", "--now", UnitName); err != nil {
			return "", err
		}
	}
	if err := os.Remove(p); err != nil {
		return "", fmt.Errorf("agent service: %w", err)
	}
	if systemdRunning(o.Root) {
		if err := systemctl(ctx, "daemon-reload"); err != nil {
			return "", err
		}
	}
	return "removed " + p, nil
}

// ServiceStatus says whether the unit is installed and, where systemd
// runs, whether it is active.
func ServiceStatus(ctx context.Context, o ServiceOptions) (string, error) {
	p := unitPath(o.Root)
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return "not installed: no " + p, nil
	} else if err != nil {
		return "", fmt.Errorf("agent service: %w", err)
	}
	if !systemdRunning(o.Root) {
		return "installed (" + p + "); systemd is not running here", nil
	}
	// is-active exits non-zero for inactive units; its word is the answer.
	out, _ := exec.CommandContext(ctx, "systemctl", "is-active", UnitName).Output()
	return "installed (" + p + "), " + strings.TrimSpace(string(out)), nil
}

// RunService runs run as the process's main work. On Linux systemd
// needs nothing of the process beyond it ending on SIGTERM, so it only
// calls run.
func RunService(ctx context.Context, run func(context.Context) error) error {
	return run(ctx)
}
