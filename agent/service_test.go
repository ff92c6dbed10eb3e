//go:build linux

package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServiceLinux: install writes the unit file under Root with the
// paths as the installed system sees them, status and uninstall find it,
// relative paths are refused, and with a Root no systemctl runs (this
// test passes on a machine without systemd).
func TestServiceLinux(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	o := ServiceOptions{Binary: "/opt/nanodems agent/nanodems-agent", Dir: "/var/lib/nanodems-agent", Root: root}
	if msg, err := ServiceStatus(ctx, o); err != nil || !strings.HasPrefix(msg, "not installed") {
		t.Fatalf("status before install: %q %v", msg, err)
	}
	msg, err := InstallService(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "systemd is not running here") {
		t.Errorf("install with a root: %q", msg)
	}
	unit, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/nanodems-agent.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"\nAfter=network-online.target\n", "\nWants=network-online.target\n", "\nRestart=always\n",
		"\nExecStart=\"/opt/nanodems agent/nanodems-agent\" run --data-dir \"/var/lib/nanodems-agent\"\n",
		"\nEnvironment=\"NANODEMS_AGENT_DIR=/var/lib/nanodems-agent\"\n", "\nWantedBy=multi-user.target\n",
	} {
		if !strings.Contains(string(unit), line) {
			t.Errorf("unit lacks %q:\n%s", strings.TrimSpace(line), unit)
		}
	}
	if strings.Contains(string(unit), root) {
		t.Errorf("unit names the root %s:\n%s", root, unit)
	}
	if msg, err := ServiceStatus(ctx, o); err != nil || !strings.HasPrefix(msg, "installed") {
		t.Fatalf("status after install: %q %v", msg, err)
	}
	if msg, err := UninstallService(ctx, o); err != nil || !strings.HasPrefix(msg, "removed") {
		t.Fatalf("uninstall: %q %v", msg, err)
	}
	if msg, err := ServiceStatus(ctx, o); err != nil || !strings.HasPrefix(msg, "not installed") {
		t.Fatalf("status after uninstall: %q %v", msg, err)
	}
	for _, bad := range []ServiceOptions{
		{Binary: "nanodems-agent", Dir: "/var/lib/x", Root: root},
		{Binary: "/usr/bin/nanodems-agent", Dir: "state", Root: root},
		{Binary: "/usr/bin/nanodems-agent\nExecStartPre=/bin/evil", Dir: "/var/lib/x", Root: root},
		{Binary: "/usr/bin/nanodems-agent", Dir: "/var/lib/$HOME", Root: root},
	} {
		if _, err := InstallService(ctx, bad); err == nil {
			t.Errorf("install of %+v succeeded", bad)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "etc/systemd/system/nanodems-agent.service")); err == nil {
		t.Error("a refused install wrote a unit")
	}
}
