package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// insertHandle stores h inside tx.
func insertHandle(ctx context.Context, tx *txn, h Handle) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO handles
		(handle, tenant_id, device_id, port, agent_id, expires_at, revoked_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		h.Handle, h.TenantID, h.DeviceID, h.Port, h.AgentID,
		nullTS(h.ExpiresAt), nullTS(h.RevokedAt), ts(h.CreatedAt))
	if err != nil {
		return fmt.Errorf("handle %s: %w", h.Handle, err)
	}
	return nil
}

// insertHandles stores the handles of one device, filling an empty
// DeviceID or TenantID and refusing one that names another device or
// tenant: a handle must never route outside its tenant.
func insertHandles(ctx context.Context, tx *txn, hs []Handle, deviceID, tenantID string) error {
	for _, h := range hs {
		if h.DeviceID == "" {
			h.DeviceID = deviceID
		}
		if h.TenantID == "" {
			h.TenantID = tenantID
		}
		if h.DeviceID != deviceID || h.TenantID != tenantID {
			return fmt.Errorf("handle %s belongs to device %s of tenant %s, not device %s of tenant %s",
				h.Handle, h.DeviceID, h.TenantID, deviceID, tenantID)
		}
		if err := insertHandle(ctx, tx, h); err != nil {
			return err
		}
	}
	return nil
}

// InsertHandle stores h as given. An unknown device or tenant is
// ErrNotFound, a duplicate handle ErrConflict.
func (s *sqlStore) InsertHandle(ctx context.Context, h Handle) error {
	err := s.write(ctx, func(tx *txn) error { return insertHandle(ctx, tx, h) })
	return wrapf(err, "insert handle %s", h.Handle)
}

// ListHandles returns the device's handles that are not revoked, expired
// ones included, by port.
func (s *sqlStore) ListHandles(ctx context.Context, deviceID string) ([]Handle, error) {
	hs, err := queryAll(ctx, s.db, scanHandle, `SELECT handle, tenant_id, device_id, port, agent_id,
		expires_at, revoked_at, created_at FROM handles
		WHERE device_id = ? AND revoked_at IS NULL ORDER BY port, handle`, deviceID)
	return hs, wrapf(err, "list handles of device %s", deviceID)
}

func scanHandle(r rowScanner) (Handle, error) {
	var h Handle
	var expires, revoked sql.Null[int64]
	var created int64
	err := r.Scan(&h.Handle, &h.TenantID, &h.DeviceID, &h.Port, &h.AgentID, &expires, &revoked, &created)
	if err != nil {
		return Handle{}, err
	}
	h.ExpiresAt, h.RevokedAt, h.CreatedAt = ptrTS(expires), ptrTS(revoked), fromTS(created)
	return h, nil
}

// ResolveHandle joins the handle with its device, deleted or not.
func (s *sqlStore) ResolveHandle(ctx context.Context, handle string) (Route, error) {
	var r Route
	var expires, revoked sql.Null[int64]
	err := s.db.QueryRowContext(ctx, `SELECT h.handle, h.tenant_id, d.site_id, h.device_id, d.host,
		h.port, h.agent_id, h.expires_at, h.revoked_at
		FROM handles h JOIN devices d ON d.id = h.device_id WHERE h.handle = ?`, handle).
		Scan(&r.Handle, &r.TenantID, &r.SiteID, &r.DeviceID, &r.Host, &r.Port, &r.AgentID, &expires, &revoked)
	if err != nil {
		return Route{}, wrapf(err, "resolve handle %s", handle)
	}
	r.ExpiresAt, r.RevokedAt = ptrTS(expires), ptrTS(revoked)
	return r, nil
}

// PinHandle pins handle to agentID unless an agent is pinned already (two
// relays may pin the same handle at once, and the first pin wins), and
// returns the agent the handle is pinned to. A new pin is a Change, so
// that other relays drop the route they cached without the pin.
func (s *sqlStore) PinHandle(ctx context.Context, handle, agentID string) (string, error) {
	var pinned string
	err := s.write(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `UPDATE handles SET agent_id = ? WHERE handle = ? AND agent_id = ''`, agentID, handle)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n > 0 {
			pinned = agentID
			if err != nil {
				return err
			}
			return tx.notify(ctx, Change{Kind: ChangeHandlePinned, ID: handle})
		}
		return tx.QueryRowContext(ctx, `SELECT agent_id FROM handles WHERE handle = ?`, handle).Scan(&pinned)
	})
	return pinned, wrapf(err, "pin handle %s", handle)
}

// RevokeHandle marks the handle revoked. Revoking it again keeps the
// first time.
func (s *sqlStore) RevokeHandle(ctx context.Context, handle string, at time.Time) error {
	err := s.execOneChange(ctx, Change{Kind: ChangeHandleRevoked, ID: handle}, `UPDATE handles SET revoked_at = COALESCE(revoked_at, ?) WHERE handle = ?`, ts(at), handle)
	return wrapf(err, "revoke handle %s", handle)
}
