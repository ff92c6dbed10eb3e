package relay

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nanodems/connector/relay/store"
)

// Bulk add: many devices of one site in one request, as a VMS integrator
// adds a site's cameras from a CSV, or the console adds what a discovery
// or a probe found. It is all or nothing: every row is checked as device
// create checks one, and one bad row refuses the whole request with the
// reason of each bad row. The rows are stored in one transaction with
// one bump of the site's allowlist version, and the site's agents get
// one allowlist push, not one per device.

const (
	// maxBulkDevices bounds one request: a large site in one go.
	maxBulkDevices = 5000
	// maxBulkBody bounds its body: 5,000 rows with labels and notes.
	maxBulkBody = 8 << 20
)

// bulkInput is the body of POST /api/sites/{siteId}/devices/bulk.
type bulkInput struct {
	Devices []deviceInput `json:"devices"`
}

// rowError is one refused row; Row counts from 0.
type rowError struct {
	Row   int    `json:"row"`
	Error string `json:"error"`
}

func (s *managementAPI) createDevicesBulk(w http.ResponseWriter, r *http.Request, p Principal) error {
	site, err := s.siteFor(r, p, r.PathValue("siteId"))
	if err != nil {
		return err
	}
	var in bulkInput
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBulkBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return fmt.Errorf("%w: request body: %v", errBadRequest, err)
	}
	if len(in.Devices) == 0 || len(in.Devices) > maxBulkDevices {
		return fmt.Errorf("%w: a bulk add takes 1 to %d devices, not %d", errBadRequest, maxBulkDevices, len(in.Devices))
	}
	now := s.cfg.Now()
	changes := make([]store.DeviceChange, 0, len(in.Devices))
	var bad []rowError
	for i, row := range in.Devices {
		c, err := s.bulkRow(row, site, p, now)
		if err != nil {
			bad = append(bad, rowError{Row: i, Error: err.Error()})
			continue
		}
		changes = append(changes, c)
	}
	if len(bad) > 0 {
		writeJSON(w, http.StatusBadRequest, map[string]any{
			"error":  fmt.Sprintf("%d of %d rows are invalid; no device was added", len(bad), len(in.Devices)),
			"errors": bad,
		})
		return nil
	}
	devs, version, err := s.store.CreateDevices(r.Context(), site.ID, changes)
	if err != nil {
		return err
	}
	s.agentSide.afterDeviceChange(r.Context(), site, "")
	out := make([]map[string]any, len(devs))
	for i, d := range devs {
		handles := map[string]string{}
		for _, h := range changes[i].Handles {
			handles[strconv.Itoa(h.Port)] = h.Handle
		}
		out[i] = map[string]any{
			"id": d.ID, "site_id": d.SiteID, "host": d.Host, "ports": d.Ports, "label": d.Label,
			"manufacturer": d.Manufacturer, "model": d.Model, "loopback_ip": d.LoopbackIP,
			"handles": handles, "has_credentials": changes[i].SetCredentials && changes[i].Sealed != nil,
		}
	}
	writeJSON(w, http.StatusCreated, map[string]any{"allowlist_version": version, "devices": out})
	return nil
}

// bulkRow checks one row as createDevice checks its body and makes its
// change; the error is the row's reason.
func (s *managementAPI) bulkRow(in deviceInput, site store.Site, p Principal, now time.Time) (store.DeviceChange, error) {
	d := store.Device{ID: newID("dev_"), SiteID: site.ID, CreatedAt: now}
	if err := in.apply(&d); err != nil {
		return store.DeviceChange{}, rowReason(err)
	}
	if err := checkTarget(d.Host, site); err != nil {
		return store.DeviceChange{}, rowReason(err)
	}
	c, setCreds, err := in.creds(nil)
	if err != nil {
		return store.DeviceChange{}, rowReason(err)
	}
	change := store.DeviceChange{
		Op: store.DeviceCreate, Device: d, Handles: s.newHandles(site.TenantID, d.ID, d.Ports), Now: now,
		Audit: []store.AuditEvent{{TenantID: site.TenantID, Actor: p.Actor, Action: "device.create", Target: d.ID, Detail: fmt.Sprintf("%s ports %v (bulk)", d.Host, d.Ports)}},
	}
	if setCreds {
		change.SetCredentials, change.Sealed = true, s.sealer.sealCreds(d.ID, c)
		change.Audit = append(change.Audit, store.AuditEvent{TenantID: site.TenantID, Actor: p.Actor, Action: "device.credentials", Target: d.ID, Detail: fmt.Sprintf("stored: %v", c != nil)})
	}
	return change, nil
}

// rowReason is a validation error without the "bad request" every row
// error would repeat.
func rowReason(err error) error {
	return errors.New(strings.TrimPrefix(err.Error(), errBadRequest.Error()+": "))
}
