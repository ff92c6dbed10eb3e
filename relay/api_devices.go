package relay

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/nanodems/connector/internal/localaddr"
	"github.com/nanodems/connector/mux"
	"github.com/nanodems/connector/relay/handle"
	"github.com/nanodems/connector/relay/store"
)

// deviceInput is the body of device create and patch; on patch, absent
// fields keep their value.
type deviceInput struct {
	Host         *string `json:"host"`
	Ports        []int   `json:"ports"`
	Label        *string `json:"label"`
	Manufacturer *string `json:"manufacturer"`
	Model        *string `json:"model"`
	Notes        *string `json:"notes"`
	// Username and Password set the device's stored login (write-only:
	// never returned). An empty username clears it.
	Username *string `json:"username"`
	Password *string `json:"password"`
	// Serial is the manufacturer serial an embedded agent claims the
	// device with (api_serials.go); "" clears it.
	Serial *string `json:"serial"`
}

// creds is the login the input leaves the device with, given the one it
// has (old, may be nil): ok is false when the input does not touch it. A
// username alone keeps the old password; a password alone keeps the old
// username; an empty username clears the login.
func (in *deviceInput) creds(old *deviceCreds) (c *deviceCreds, ok bool, err error) {
	if in.Username == nil && in.Password == nil {
		return nil, false, nil
	}
	next := deviceCreds{}
	if old != nil {
		next = *old
	}
	if in.Username != nil {
		if *in.Username == "" {
			return nil, true, nil
		}
		next.Username = *in.Username
	}
	if in.Password != nil {
		next.Password = *in.Password
	}
	if next.Username == "" {
		return nil, false, fmt.Errorf("%w: a password needs a username", errBadRequest)
	}
	return &next, true, nil
}

// maxPorts bounds the ports of one device: a camera has a handful (HTTP,
// HTTPS, RTSP, SDK, ONVIF); hundreds would be a port sweep.
const maxPorts = 64

func (in *deviceInput) apply(d *store.Device) error {
	if in.Host != nil {
		d.Host = strings.TrimSpace(*in.Host)
	}
	if in.Ports != nil {
		d.Ports = in.Ports
	}
	for dst, src := range map[*string]*string{&d.Label: in.Label, &d.Manufacturer: in.Manufacturer, &d.Model: in.Model, &d.Notes: in.Notes} {
		if src != nil {
			*dst = *src
		}
	}
	// The header check is what the agent will enforce: validate with it.
	if _, err := mux.AppendHeader(nil, mux.Header{Host: d.Host, Port: 1}); err != nil || strings.ContainsAny(d.Host, "/?#@[]") ||
		(strings.Contains(d.Host, ":") && net.ParseIP(d.Host) == nil) {
		return fmt.Errorf("%w: host %q is not a host name or IP address", errBadRequest, d.Host)
	}
	if len(d.Ports) == 0 || len(d.Ports) > maxPorts {
		return fmt.Errorf("%w: a device needs 1 to %d ports", errBadRequest, maxPorts)
	}
	seen := map[int]bool{}
	for _, p := range d.Ports {
		if p < 1 || p > 65535 {
			return fmt.Errorf("%w: port %d is out of range", errBadRequest, p)
		}
		if seen[p] {
			return fmt.Errorf("%w: port %d is listed twice", errBadRequest, p)
		}
		seen[p] = true
	}
	return nil
}

// deviceJSON is a device as the API shows it, with its live handles.
func (s *managementAPI) deviceJSON(ctx context.Context, d store.Device, version int64) (map[string]any, error) {
	hs, err := s.store.ListHandles(ctx, d.ID)
	if err != nil {
		return nil, err
	}
	handles := map[string]string{}
	for _, h := range hs {
		handles[strconv.Itoa(h.Port)] = h.Handle
	}
	creds, err := s.sealer.credsFor(ctx, d.ID)
	if err != nil {
		return nil, err
	}
	out := map[string]any{
		"has_credentials": creds != nil,
		"id":              d.ID, "site_id": d.SiteID, "host": d.Host, "ports": d.Ports,
		"label": d.Label, "manufacturer": d.Manufacturer, "model": d.Model, "notes": d.Notes,
		"loopback_ip": d.LoopbackIP, "handles": handles, "created_at": d.CreatedAt,
	}
	if err := s.addSerial(ctx, d.ID, out); err != nil {
		return nil, err
	}
	if version > 0 {
		out["allowlist_version"] = version
	}
	return out, nil
}

func (s *managementAPI) newHandles(tenantID, deviceID string, ports []int) []store.Handle {
	hs := make([]store.Handle, len(ports))
	for i, p := range ports {
		hs[i] = store.Handle{Handle: handle.New(), TenantID: tenantID, DeviceID: deviceID, Port: p, CreatedAt: s.cfg.Now()}
	}
	return hs
}

// checkTarget refuses a host that names a local target (loopback,
// link-local, cloud metadata, unspecified, multicast; localhost) unless
// the site allows them. On a host where an agent runs beside the relay,
// such a device reaches the relay's own loopback services. The agent
// checks again, on the address it actually dials.
func checkTarget(host string, site store.Site) error {
	kind := localaddr.Host(host)
	if kind == "" || site.AllowLoopback {
		return nil
	}
	return fmt.Errorf(`%w: host %q is a %s address, refused for site %s (set "allow_loopback" on the site to allow local targets)`,
		errBadRequest, host, kind, site.ID)
}

func (s *managementAPI) createDevice(w http.ResponseWriter, r *http.Request, p Principal) error {
	site, err := s.siteFor(r, p, r.PathValue("siteId"))
	if err != nil {
		return err
	}
	var in deviceInput
	if err := readJSON(r, &in); err != nil {
		return err
	}
	now := s.cfg.Now()
	d := store.Device{ID: newID("dev_"), SiteID: site.ID, CreatedAt: now}
	// Everything is checked before anything is written: a 400 leaves the
	// store as it was.
	if err := in.apply(&d); err != nil {
		return err
	}
	if err := checkTarget(d.Host, site); err != nil {
		return err
	}
	c, setCreds, err := in.creds(nil)
	if err != nil {
		return err
	}
	serial, err := in.serial()
	if err != nil {
		return err
	}
	change := store.DeviceChange{
		Op: store.DeviceCreate, Device: d, Handles: s.newHandles(site.TenantID, d.ID, d.Ports), Now: now,
		Audit: []store.AuditEvent{{TenantID: site.TenantID, Actor: p.Actor, Action: "device.create", Target: d.ID, Detail: fmt.Sprintf("%s ports %v", d.Host, d.Ports)}},
	}
	if setCreds {
		change.SetCredentials, change.Sealed = true, s.sealer.sealCreds(d.ID, c)
		change.Audit = append(change.Audit, store.AuditEvent{TenantID: site.TenantID, Actor: p.Actor, Action: "device.credentials", Target: d.ID, Detail: fmt.Sprintf("stored: %v", c != nil)})
	}
	if serial != nil {
		change.Serial = serial
		change.Audit = append(change.Audit, store.AuditEvent{TenantID: site.TenantID, Actor: p.Actor, Action: "device.serial", Target: d.ID, Detail: fmt.Sprintf("serial %q", *serial)})
	}
	d, version, err := s.store.ApplyDeviceChange(r.Context(), change)
	if err != nil {
		return serialConflict(err)
	}
	s.agentSide.afterDeviceChange(r.Context(), site, d.ID)
	out, err := s.deviceJSON(r.Context(), d, version)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// deviceFor loads a device and its site, checking that p may act on it.
func (s *managementAPI) deviceFor(r *http.Request, p Principal) (store.Device, store.Site, error) {
	id := r.PathValue("deviceId")
	d, err := s.store.GetDevice(r.Context(), id)
	if err != nil {
		return d, store.Site{}, lookup(err, "device "+id)
	}
	site, err := s.siteFor(r, p, d.SiteID)
	return d, site, err
}

func (s *managementAPI) getDevice(w http.ResponseWriter, r *http.Request, p Principal) error {
	d, _, err := s.deviceFor(r, p)
	if err != nil {
		return err
	}
	out, err := s.deviceJSON(r.Context(), d, 0)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// patchDevice edits a device. New ports get fresh handles, removed ports'
// handles are revoked, and the site's agents get the new allowlist.
func (s *managementAPI) patchDevice(w http.ResponseWriter, r *http.Request, p Principal) error {
	d, site, err := s.deviceFor(r, p)
	if err != nil {
		return err
	}
	var in deviceInput
	if err := readJSON(r, &in); err != nil {
		return err
	}
	old := slices.Clone(d.Ports)
	// Everything is checked before anything is written: a 400 leaves the
	// device, its handles and its login as they were.
	if err := in.apply(&d); err != nil {
		return err
	}
	if err := checkTarget(d.Host, site); err != nil {
		return err
	}
	oldCreds, err := s.sealer.credsFor(r.Context(), d.ID)
	if err != nil {
		return err
	}
	c, setCreds, err := in.creds(oldCreds)
	if err != nil {
		return err
	}
	serial, err := in.serial()
	if err != nil {
		return err
	}
	var added []int
	for _, port := range d.Ports {
		if !slices.Contains(old, port) {
			added = append(added, port)
		}
	}
	now := s.cfg.Now()
	change := store.DeviceChange{
		Op: store.DeviceUpdate, Device: d, Handles: s.newHandles(site.TenantID, d.ID, added), Now: now,
		Audit: []store.AuditEvent{{TenantID: site.TenantID, Actor: p.Actor, Action: "device.update", Target: d.ID, Detail: fmt.Sprintf("%s ports %v", d.Host, d.Ports)}},
	}
	if setCreds {
		change.SetCredentials, change.Sealed = true, s.sealer.sealCreds(d.ID, c)
		change.Audit = append(change.Audit, store.AuditEvent{TenantID: site.TenantID, Actor: p.Actor, Action: "device.credentials", Target: d.ID, Detail: fmt.Sprintf("stored: %v", c != nil)})
	}
	if serial != nil {
		change.Serial = serial
		change.Audit = append(change.Audit, store.AuditEvent{TenantID: site.TenantID, Actor: p.Actor, Action: "device.serial", Target: d.ID, Detail: fmt.Sprintf("serial %q", *serial)})
	}
	_, version, err := s.store.ApplyDeviceChange(r.Context(), change)
	if err != nil {
		return serialConflict(err)
	}
	s.agentSide.afterDeviceChange(r.Context(), site, d.ID)
	out, err := s.deviceJSON(r.Context(), d, version)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *managementAPI) deleteDevice(w http.ResponseWriter, r *http.Request, p Principal) error {
	d, site, err := s.deviceFor(r, p)
	if err != nil {
		return err
	}
	_, version, err := s.store.ApplyDeviceChange(r.Context(), store.DeviceChange{
		Op: store.DeviceDelete, Device: d, Now: s.cfg.Now(),
		Audit: []store.AuditEvent{{TenantID: site.TenantID, Actor: p.Actor, Action: "device.delete", Target: d.ID, Detail: d.Host}},
	})
	if err != nil {
		return lookup(err, "device "+d.ID)
	}
	s.agentSide.afterDeviceChange(r.Context(), site, d.ID)
	writeJSON(w, http.StatusOK, map[string]any{"id": d.ID, "deleted": true, "allowlist_version": version})
	return nil
}
