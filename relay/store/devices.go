package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// ApplyDeviceChange writes c in one transaction; see DeviceChange.
func (s *sqlStore) ApplyDeviceChange(ctx context.Context, c DeviceChange) (Device, int64, error) {
	d := c.Device
	var version int64
	err := s.write(ctx, func(tx *txn) error {
		var siteID, tenantID string
		var err error
		switch c.Op {
		case DeviceCreate:
			siteID = d.SiteID
			tenantID, version, err = createDevice(ctx, tx, &d)
		case DeviceUpdate:
			siteID, tenantID, version, err = updateDevice(ctx, tx, d, c.Now)
		case DeviceDelete:
			siteID, tenantID, version, err = deleteDevice(ctx, tx, d.ID, c.Now)
		default:
			err = fmt.Errorf("unknown device operation %d", c.Op)
		}
		if err != nil {
			return err
		}
		if err := applySerial(ctx, tx, c, d.ID); err != nil {
			return err
		}
		if err := insertHandles(ctx, tx, c.Handles, d.ID, tenantID); err != nil {
			return err
		}
		if c.SetCredentials || c.Op == DeviceDelete {
			sealed := c.Sealed
			if c.Op == DeviceDelete {
				sealed = nil
			}
			if err := setCredentials(ctx, tx, d.ID, sealed, c.Now); err != nil {
				return err
			}
		}
		for _, e := range c.Audit {
			if e.At.IsZero() {
				e.At = c.Now
			}
			if e.TenantID == "" {
				e.TenantID = tenantID
			}
			if err := appendAudit(ctx, tx, e); err != nil {
				return err
			}
		}
		return tx.notify(ctx, Change{Kind: ChangeDevice, ID: d.ID, SiteID: siteID, TenantID: tenantID})
	})
	if err != nil {
		return Device{}, 0, wrapf(err, "%s device %s", c.Op, d.ID)
	}
	return d, version, nil
}

func (op DeviceOp) String() string {
	switch op {
	case DeviceCreate:
		return "create"
	case DeviceUpdate:
		return "update"
	case DeviceDelete:
		return "delete"
	}
	return fmt.Sprintf("op %d", int(op))
}

// createDevice inserts *d with a fresh loopback address (set in d) and
// bumps its site's allowlist version inside tx.
func createDevice(ctx context.Context, tx *txn, d *Device) (tenantID string, version int64, err error) {
	ports, err := json.Marshal(portsOrEmpty(d.Ports))
	if err != nil {
		return "", 0, err
	}
	d.CreatedAt = roundTS(d.CreatedAt)
	tenantID, version, err = bumpSite(ctx, tx, d.SiteID)
	if err != nil {
		return "", 0, err
	}
	n, err := allocLoopback(ctx, tx)
	if err != nil {
		return "", 0, err
	}
	d.LoopbackIP = loopbackIP(n)
	_, err = tx.ExecContext(ctx, `INSERT INTO devices
		(id, site_id, host, ports, label, manufacturer, model, notes, loopback, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.ID, d.SiteID, d.Host, string(ports), d.Label, d.Manufacturer, d.Model, d.Notes, n, ts(d.CreatedAt))
	return tenantID, version, err
}

// updateDevice rewrites d's mutable fields, revokes the live handles of
// ports it no longer has and bumps its site's allowlist version inside tx.
func updateDevice(ctx context.Context, tx *txn, d Device, now time.Time) (siteID, tenantID string, version int64, err error) {
	ports, err := json.Marshal(portsOrEmpty(d.Ports))
	if err != nil {
		return "", "", 0, err
	}
	err = tx.QueryRowContext(ctx, `UPDATE devices
		SET host = ?, ports = ?, label = ?, manufacturer = ?, model = ?, notes = ?
		WHERE id = ? AND deleted_at IS NULL RETURNING site_id`,
		d.Host, string(ports), d.Label, d.Manufacturer, d.Model, d.Notes, d.ID).Scan(&siteID)
	if err != nil {
		return "", "", 0, err
	}
	tenantID, version, err = bumpSite(ctx, tx, siteID)
	if err != nil {
		return "", "", 0, err
	}
	q := `UPDATE handles SET revoked_at = ? WHERE device_id = ? AND revoked_at IS NULL`
	args := []any{ts(now), d.ID}
	if len(d.Ports) > 0 {
		q += ` AND port NOT IN (?` + strings.Repeat(", ?", len(d.Ports)-1) + `)`
		for _, p := range d.Ports {
			args = append(args, p)
		}
	}
	_, err = tx.ExecContext(ctx, q, args...)
	return siteID, tenantID, version, err
}

// deleteDevice marks the device deleted, revokes its live handles and
// bumps its site's allowlist version inside tx.
func deleteDevice(ctx context.Context, tx *txn, id string, now time.Time) (siteID, tenantID string, version int64, err error) {
	err = tx.QueryRowContext(ctx, `UPDATE devices SET deleted_at = ?
		WHERE id = ? AND deleted_at IS NULL RETURNING site_id`, ts(now), id).Scan(&siteID)
	if err != nil {
		return "", "", 0, err
	}
	_, err = tx.ExecContext(ctx, `UPDATE handles SET revoked_at = ?
		WHERE device_id = ? AND revoked_at IS NULL`, ts(now), id)
	if err != nil {
		return "", "", 0, err
	}
	tenantID, version, err = bumpSite(ctx, tx, siteID)
	return siteID, tenantID, version, err
}

// CreateDevice is ApplyDeviceChange of a DeviceCreate with handles and
// nothing else.
func (s *sqlStore) CreateDevice(ctx context.Context, d Device, handles []Handle) (Device, int64, error) {
	return s.ApplyDeviceChange(ctx, DeviceChange{Op: DeviceCreate, Device: d, Handles: handles, Now: d.CreatedAt})
}

// UpdateDevice is ApplyDeviceChange of a DeviceUpdate adding handles add
// and nothing else.
func (s *sqlStore) UpdateDevice(ctx context.Context, d Device, add []Handle, now time.Time) (int64, error) {
	_, v, err := s.ApplyDeviceChange(ctx, DeviceChange{Op: DeviceUpdate, Device: d, Handles: add, Now: now})
	return v, err
}

// DeleteDevice is ApplyDeviceChange of a DeviceDelete without audit.
func (s *sqlStore) DeleteDevice(ctx context.Context, id string, now time.Time) (int64, error) {
	_, v, err := s.ApplyDeviceChange(ctx, DeviceChange{Op: DeviceDelete, Device: Device{ID: id}, Now: now})
	return v, err
}

const deviceCols = `id, site_id, host, ports, label, manufacturer, model, notes, loopback, created_at`

func scanDevice(r rowScanner) (Device, error) {
	var d Device
	var ports string
	var loopback, created int64
	err := r.Scan(&d.ID, &d.SiteID, &d.Host, &ports, &d.Label, &d.Manufacturer, &d.Model, &d.Notes, &loopback, &created)
	if err != nil {
		return Device{}, err
	}
	if err := json.Unmarshal([]byte(ports), &d.Ports); err != nil {
		return Device{}, fmt.Errorf("device %s: ports: %w", d.ID, err)
	}
	d.LoopbackIP, d.CreatedAt = loopbackIP(loopback), fromTS(created)
	return d, nil
}

// GetDevice returns the device, or ErrNotFound if it is unknown or deleted.
func (s *sqlStore) GetDevice(ctx context.Context, id string) (Device, error) {
	d, err := scanDevice(s.db.QueryRowContext(ctx,
		`SELECT `+deviceCols+` FROM devices WHERE id = ? AND deleted_at IS NULL`, id))
	return d, wrapf(err, "get device %s", id)
}

// ListDevices returns the site's devices, oldest first.
func (s *sqlStore) ListDevices(ctx context.Context, siteID string) ([]Device, error) {
	ds, err := queryAll(ctx, s.db, scanDevice, `SELECT `+deviceCols+` FROM devices
		WHERE site_id = ? AND deleted_at IS NULL ORDER BY created_at, id`, siteID)
	return ds, wrapf(err, "list devices of site %s", siteID)
}

// portsOrEmpty stores a device without ports as [] rather than null, so
// it reads back as an empty list.
func portsOrEmpty(p []int) []int {
	if p == nil {
		return []int{}
	}
	return p
}
