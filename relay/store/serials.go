package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// DeviceSerial is the manufacturer serial a device was pre-registered
// with, and the agent that claimed it (empty AgentID and nil ClaimedAt
// until then).
type DeviceSerial struct {
	DeviceID  string
	SiteID    string
	Serial    string
	AgentID   string
	ClaimedAt *time.Time
	CreatedAt time.Time
}

// SerialError is a refused serial write: the serial belongs to another
// unclaimed device, or the device's own serial was already claimed and
// cannot change. It is ErrConflict.
type SerialError struct {
	Serial  string
	Claimed bool // the device's serial was claimed (by AgentID)
	AgentID string
}

func (e *SerialError) Error() string {
	if e.Claimed {
		return fmt.Sprintf("the device's serial %q was already claimed by agent %s and cannot change", e.Serial, e.AgentID)
	}
	return fmt.Sprintf("serial %q is already registered to another unclaimed device", e.Serial)
}

func (e *SerialError) Is(target error) bool { return target == ErrConflict }

// applySerial is the serial part of a DeviceChange, inside its
// transaction: a deleted device loses its row; otherwise a nil Serial
// leaves it, "" clears it, and a new one replaces it. A claimed serial
// does not change.
func applySerial(ctx context.Context, tx *txn, c DeviceChange, deviceID string) error {
	if c.Op == DeviceDelete {
		_, err := tx.ExecContext(ctx, `DELETE FROM device_serials WHERE device_id = ?`, deviceID)
		return err
	}
	if c.Serial == nil {
		return nil
	}
	cur, err := scanSerial(tx.QueryRowContext(ctx, `SELECT `+serialCols+` FROM device_serials ds
		JOIN devices d ON d.id = ds.device_id WHERE ds.device_id = ?`, deviceID))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		cur = DeviceSerial{}
	case err != nil:
		return err
	}
	if cur.Serial == *c.Serial {
		return nil
	}
	if cur.ClaimedAt != nil {
		return &SerialError{Serial: cur.Serial, Claimed: true, AgentID: cur.AgentID}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM device_serials WHERE device_id = ?`, deviceID); err != nil {
		return err
	}
	if *c.Serial == "" {
		return nil
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM device_serials WHERE serial = ? AND claimed_at IS NULL`, *c.Serial).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return &SerialError{Serial: *c.Serial}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO device_serials (device_id, serial, agent_id, claimed_at, created_at)
		VALUES (?, ?, '', NULL, ?)`, deviceID, *c.Serial, ts(c.Now))
	return err
}

const serialCols = `ds.device_id, d.site_id, ds.serial, ds.agent_id, ds.claimed_at, ds.created_at`

func scanSerial(r rowScanner) (DeviceSerial, error) {
	var s DeviceSerial
	var claimed sql.Null[int64]
	var created int64
	if err := r.Scan(&s.DeviceID, &s.SiteID, &s.Serial, &s.AgentID, &claimed, &created); err != nil {
		return DeviceSerial{}, err
	}
	s.ClaimedAt, s.CreatedAt = ptrTS(claimed), fromTS(created)
	return s, nil
}

// GetDeviceSerial returns a live device's serial; ErrNotFound if it has
// none.
func (s *sqlStore) GetDeviceSerial(ctx context.Context, deviceID string) (DeviceSerial, error) {
	ds, err := scanSerial(s.db.QueryRowContext(ctx, `SELECT `+serialCols+` FROM device_serials ds
		JOIN devices d ON d.id = ds.device_id WHERE ds.device_id = ? AND d.deleted_at IS NULL`, deviceID))
	return ds, wrapf(err, "get serial of device %s", deviceID)
}

// ClaimDeviceSerial binds a new agent to the live device registered with
// serial: in one transaction it marks the serial claimed by a.ID and
// creates a, on the device's site (a.SiteID is set from it). An unknown
// serial is ErrNotFound; a claimed one is ErrUsed, with the serial's row
// (its site and agent) returned for the audit.
func (s *sqlStore) ClaimDeviceSerial(ctx context.Context, serial string, a Agent) (DeviceSerial, error) {
	var ds DeviceSerial
	err := s.write(ctx, func(tx *txn) error {
		var err error
		// An unclaimed row first: a serial claimed on one device and
		// registered again on another is claimable there.
		ds, err = scanSerial(tx.QueryRowContext(ctx, `SELECT `+serialCols+` FROM device_serials ds
			JOIN devices d ON d.id = ds.device_id
			WHERE ds.serial = ? AND d.deleted_at IS NULL
			ORDER BY CASE WHEN ds.claimed_at IS NULL THEN 0 ELSE 1 END, ds.created_at DESC LIMIT 1`, serial))
		if err != nil {
			return err
		}
		if ds.ClaimedAt != nil {
			return ErrUsed
		}
		res, err := tx.ExecContext(ctx, `UPDATE device_serials SET agent_id = ?, claimed_at = ?
			WHERE device_id = ? AND claimed_at IS NULL`, a.ID, ts(a.CreatedAt), ds.DeviceID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return ErrUsed
		}
		a.SiteID = ds.SiteID
		_, err = tx.ExecContext(ctx, `INSERT INTO agents (id, site_id, cert_serial, revoked_at, created_at)
			VALUES (?, ?, ?, ?, ?)`, a.ID, a.SiteID, a.CertSerial, nullTS(a.RevokedAt), ts(a.CreatedAt))
		if err != nil {
			return err
		}
		ds.AgentID, ds.ClaimedAt = a.ID, &a.CreatedAt
		return nil
	})
	return ds, wrapf(err, "claim serial")
}
