package relay

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/nanodems/connector/relay/handle"
	"github.com/nanodems/connector/relay/store"
)

// ensureHandle is POST /api/devices/{deviceId}/ports/{port}/handle: the
// live handle of one device port, minted when the port has none (its
// handle was revoked, or the device predates it). It answers 200 with the
// existing handle or 201 with a new one; the console's port pills open
// cameras through it.
func (s *managementAPI) ensureHandle(w http.ResponseWriter, r *http.Request, p Principal) error {
	d, site, err := s.deviceFor(r, p)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(r.PathValue("port"))
	if err != nil || !slices.Contains(d.Ports, port) {
		return fmt.Errorf("%w: port %q is not one of device %s's ports %v", errBadRequest, r.PathValue("port"), d.ID, d.Ports)
	}
	hs, err := s.store.ListHandles(r.Context(), d.ID)
	if err != nil {
		return err
	}
	now := s.cfg.Now()
	for _, h := range hs {
		if h.Port == port && (h.ExpiresAt == nil || now.Before(*h.ExpiresAt)) {
			writeJSON(w, http.StatusOK, handleJSON(h))
			return nil
		}
	}
	h := store.Handle{Handle: handle.New(), TenantID: site.TenantID, DeviceID: d.ID, Port: port, CreatedAt: now}
	if err := s.store.InsertHandle(r.Context(), h); err != nil {
		return err
	}
	s.audit(store.AuditEvent{TenantID: site.TenantID, Actor: p.Actor, Action: "handle.create", Target: h.Handle, Detail: fmt.Sprintf("%s port %d", d.ID, port)})
	writeJSON(w, http.StatusCreated, handleJSON(h))
	return nil
}
