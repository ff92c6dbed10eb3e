package agent

import (
	"fmt"
	"path/filepath"
	"strings"
)

// The agent as an operating-system service: a systemd unit on Linux
// (service_linux.go), a service of the Windows service control manager
// (service_windows.go). A site PC that reboots brings its agent back by
// itself, and the installers (relay/installer.go) register it with
// `nanodems-agent service install`.

// Service names: the systemd unit is nanodems-agent.service; the Windows
// service is NanodemsAgent (what `sc query NanodemsAgent` names).
const (
	UnitName           = "nanodems-agent.service"
	WindowsServiceName = "NanodemsAgent"
	serviceDisplayName = "nanodems agent"
	serviceDescription = "The site's side of the nanodems connector: keeps one session to the relay and reaches the LAN devices it is allowed to."
)

// ServiceOptions say what the service runs.
type ServiceOptions struct {
	// Binary is the agent's absolute path as the running system sees it.
	Binary string
	// Dir is the state directory the service runs with (--data-dir), as
	// the running system sees it.
	Dir string
	// Root prefixes every path the service code writes or reads (the unit
	// file), never the paths written into it: an install into an image or
	// a test's temporary root. With a Root, systemctl is not run: the
	// system that runs systemd is not the one being written.
	Root string
}

func (o ServiceOptions) check() error {
	if !filepath.IsAbs(o.Binary) {
		return fmt.Errorf("agent service: binary path %q is not absolute", o.Binary)
	}
	if !filepath.IsAbs(o.Dir) {
		return fmt.Errorf("agent service: state directory %q is not absolute", o.Dir)
	}
	for _, p := range []string{o.Binary, o.Dir} {
		if strings.ContainsAny(p, "\n\r\"%$\\") && filepath.Separator == '/' {
			return fmt.Errorf("agent service: path %q has a character a unit file cannot quote", p)
		}
	}
	return nil
}

// SystemdUnit is the unit file of o: started once the network is up,
// restarted whenever it ends (a revoked certificate ends it too, and
// RestartSec keeps that from spinning), with the state directory given
// both as the flag and as NANODEMS_AGENT_DIR.
func SystemdUnit(o ServiceOptions) string {
	return fmt.Sprintf(`[Unit]
Description=%s: %s
Documentation=https://github.com/nanodems/connector/blob/main/docs/install.md
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
Environment="NANODEMS_AGENT_DIR=%s"
ExecStart="%s" run --data-dir "%s"
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
`, serviceDisplayName, serviceDescription, o.Dir, o.Binary, o.Dir)
}
