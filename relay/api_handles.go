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

// listDeviceHandles is GET /api/devices/{deviceId}/handles: the device's
// live handles (not revoked; expired ones included), by port.
func (s *managementAPI) listDeviceHandles(w http.ResponseWriter, r *http.Request, p Principal) error {
	d, _, err := s.deviceFor(r, p)
	if err != nil {
		return err
	}
	hs, err := s.store.ListHandles(r.Context(), d.ID)
	if err != nil {
		return err
	}
	items := make([]map[string]any, len(hs))
	for i, h := range hs {
		items[i] = handleJSON(h)
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
	return nil
}

// handleFor loads a live handle and checks that p may act on it. A
// revoked handle is not found: it names nothing any more.
func (s *managementAPI) handleFor(r *http.Request, p Principal) (store.Route, store.Site, error) {
	h := r.PathValue("handle")
	route, err := s.store.ResolveHandle(r.Context(), h)
	if err != nil || route.RevokedAt != nil {
		return route, store.Site{}, lookup(store.ErrNotFound, "handle "+h)
	}
	site, err := s.siteFor(r, p, route.SiteID)
	return route, site, err
}

// revokeHandle is DELETE /api/handles/{handle}: the handle answers 404
// on every access path at once, and the tunnels open on it are cut (here,
// and on the other relays through the change feed). The device port keeps
// no handle until one is minted (ensureHandle).
func (s *managementAPI) revokeHandle(w http.ResponseWriter, r *http.Request, p Principal) error {
	route, site, err := s.handleFor(r, p)
	if err != nil {
		return err
	}
	if err := s.store.RevokeHandle(r.Context(), route.Handle, s.cfg.Now()); err != nil {
		return lookup(err, "handle "+route.Handle)
	}
	closed := s.agentSide.afterHandleRevoked(r.Context())
	s.audit(store.AuditEvent{TenantID: site.TenantID, Actor: p.Actor, Action: "handle.revoke", Target: route.Handle,
		Detail: fmt.Sprintf("%s port %d; tunnels closed: %d", route.DeviceID, route.Port, closed)})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// rotateHandle is POST /api/handles/{handle}/rotate: a new handle for the
// same device port, and the old one revoked in the same write (404 at
// once, its open tunnels cut). A handle leaked with a URL is replaced
// without touching the device.
func (s *managementAPI) rotateHandle(w http.ResponseWriter, r *http.Request, p Principal) error {
	route, site, err := s.handleFor(r, p)
	if err != nil {
		return err
	}
	now := s.cfg.Now()
	nu := store.Handle{Handle: handle.New(), TenantID: route.TenantID, DeviceID: route.DeviceID, Port: route.Port, AgentID: route.AgentID, CreatedAt: now}
	if err := s.store.RotateHandle(r.Context(), route.Handle, nu, now); err != nil {
		return lookup(err, "handle "+route.Handle)
	}
	closed := s.agentSide.afterHandleRevoked(r.Context())
	s.audit(store.AuditEvent{TenantID: site.TenantID, Actor: p.Actor, Action: "handle.rotate", Target: route.Handle,
		Detail: fmt.Sprintf("%s port %d; new handle %s; tunnels closed: %d", route.DeviceID, route.Port, nu.Handle, closed)})
	out := handleJSON(nu)
	out["replaces"] = route.Handle
	writeJSON(w, http.StatusCreated, out)
	return nil
}
