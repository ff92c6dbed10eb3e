package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// CreateDevice stores d with a fresh loopback address, inserts handles and
// bumps the site's allowlist version. Handles may leave DeviceID and
// TenantID empty; they are filled from d and its site.
func (s *SQLite) CreateDevice(ctx context.Context, d Device, handles []Handle) (Device, int64, error) {
	ports, err := json.Marshal(portsOrEmpty(d.Ports))
	if err != nil {
		return Device{}, 0, wrapf(err, "create device %s", d.ID)
	}
	d.CreatedAt = roundTS(d.CreatedAt)
	var version int64
	err = s.write(ctx, func(tx *sql.Tx) error {
		tenantID, v, err := bumpSite(ctx, tx, d.SiteID)
		if err != nil {
			return err
		}
		version = v
		n, err := allocLoopback(ctx, tx)
		if err != nil {
			return err
		}
		d.LoopbackIP = loopbackIP(n)
		_, err = tx.ExecContext(ctx, `INSERT INTO devices
			(id, site_id, host, ports, label, manufacturer, model, notes, loopback, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			d.ID, d.SiteID, d.Host, string(ports), d.Label, d.Manufacturer, d.Model, d.Notes, n, ts(d.CreatedAt))
		if err != nil {
			return err
		}
		return insertHandles(ctx, tx, handles, d.ID, tenantID)
	})
	if err != nil {
		return Device{}, 0, wrapf(err, "create device %s", d.ID)
	}
	return d, version, nil
}

// UpdateDevice rewrites the device's mutable fields, revokes the live
// handles of ports it no longer has, inserts add and bumps the site's
// allowlist version. The site, loopback address and creation time are
// kept; d.SiteID is ignored.
func (s *SQLite) UpdateDevice(ctx context.Context, d Device, add []Handle, now time.Time) (int64, error) {
	ports, err := json.Marshal(portsOrEmpty(d.Ports))
	if err != nil {
		return 0, wrapf(err, "update device %s", d.ID)
	}
	var version int64
	err = s.write(ctx, func(tx *sql.Tx) error {
		var siteID string
		err := tx.QueryRowContext(ctx, `UPDATE devices
			SET host = ?, ports = ?, label = ?, manufacturer = ?, model = ?, notes = ?
			WHERE id = ? AND deleted_at IS NULL RETURNING site_id`,
			d.Host, string(ports), d.Label, d.Manufacturer, d.Model, d.Notes, d.ID).Scan(&siteID)
		if err != nil {
			return err
		}
		tenantID, v, err := bumpSite(ctx, tx, siteID)
		if err != nil {
			return err
		}
		version = v
		// Revoke before inserting so that add is never revoked, even if
		// it names a port outside d.Ports.
		q := `UPDATE handles SET revoked_at = ? WHERE device_id = ? AND revoked_at IS NULL`
		args := []any{ts(now), d.ID}
		if len(d.Ports) > 0 {
			q += ` AND port NOT IN (?` + strings.Repeat(", ?", len(d.Ports)-1) + `)`
			for _, p := range d.Ports {
				args = append(args, p)
			}
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return err
		}
		return insertHandles(ctx, tx, add, d.ID, tenantID)
	})
	if err != nil {
		return 0, wrapf(err, "update device %s", d.ID)
	}
	return version, nil
}

// DeleteDevice revokes the device's live handles, removes the device and
// bumps the site's allowlist version. The row is only marked deleted: its
// handles keep resolving, as revoked, and its loopback address stays taken.
func (s *SQLite) DeleteDevice(ctx context.Context, id string, now time.Time) (int64, error) {
	var version int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		var siteID string
		err := tx.QueryRowContext(ctx, `UPDATE devices SET deleted_at = ?
			WHERE id = ? AND deleted_at IS NULL RETURNING site_id`, ts(now), id).Scan(&siteID)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE handles SET revoked_at = ?
			WHERE device_id = ? AND revoked_at IS NULL`, ts(now), id)
		if err != nil {
			return err
		}
		_, version, err = bumpSite(ctx, tx, siteID)
		return err
	})
	if err != nil {
		return 0, wrapf(err, "delete device %s", id)
	}
	return version, nil
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
func (s *SQLite) GetDevice(ctx context.Context, id string) (Device, error) {
	d, err := scanDevice(s.db.QueryRowContext(ctx,
		`SELECT `+deviceCols+` FROM devices WHERE id = ? AND deleted_at IS NULL`, id))
	return d, wrapf(err, "get device %s", id)
}

// ListDevices returns the site's devices, oldest first.
func (s *SQLite) ListDevices(ctx context.Context, siteID string) ([]Device, error) {
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
