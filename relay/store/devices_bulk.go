package store

import (
	"context"
	"fmt"
)

// CreateDevices stores every change of cs, each a DeviceCreate in site
// siteID, in one transaction: all of them or none. The site's allowlist
// version goes up by one for the whole batch, as the batch is one change
// of the site's allowlist and its agents get one push for it. It returns
// the devices as stored (with their LoopbackIP) and the new version.
func (s *sqlStore) CreateDevices(ctx context.Context, siteID string, cs []DeviceChange) ([]Device, int64, error) {
	out := make([]Device, len(cs))
	var version int64
	err := s.write(ctx, func(tx *txn) error {
		var before int64
		if err := tx.QueryRowContext(ctx, `SELECT allowlist_version FROM sites WHERE id = ?`, siteID).Scan(&before); err != nil {
			return fmt.Errorf("site %s: %w", siteID, err)
		}
		for i, c := range cs {
			d := c.Device
			if c.Op != DeviceCreate || d.SiteID != siteID {
				return fmt.Errorf("row %d: a bulk create takes only new devices of site %s", i, siteID)
			}
			tenantID, _, err := createDevice(ctx, tx, &d)
			if err != nil {
				return fmt.Errorf("row %d: %w", i, err)
			}
			if err := applySerial(ctx, tx, c, d.ID); err != nil {
				return fmt.Errorf("row %d: %w", i, err)
			}
			if err := insertHandles(ctx, tx, c.Handles, d.ID, tenantID); err != nil {
				return fmt.Errorf("row %d: %w", i, err)
			}
			if c.SetCredentials {
				if err := setCredentials(ctx, tx, d.ID, c.Sealed, c.Now); err != nil {
					return fmt.Errorf("row %d: %w", i, err)
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
			if err := tx.notify(ctx, Change{Kind: ChangeDevice, ID: d.ID, SiteID: siteID, TenantID: tenantID}); err != nil {
				return err
			}
			out[i] = d
		}
		// createDevice bumped the version once per device; the batch is
		// one version.
		version = before + 1
		_, err := tx.ExecContext(ctx, `UPDATE sites SET allowlist_version = ? WHERE id = ?`, version, siteID)
		return err
	})
	if err != nil {
		return nil, 0, wrapf(err, "create %d devices in site %s", len(cs), siteID)
	}
	return out, version, nil
}
