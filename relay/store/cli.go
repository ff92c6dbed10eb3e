package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/netip"
	"time"
)

// CLISession is an operator's nanodems-tunnel session: the ops_ token the
// relay minted for the sites the operator picked. Only the SHA-256 of the
// token is stored. ExpiresAt slides forward on every use but never past
// HardCapAt, which is fixed when the session is issued.
type CLISession struct {
	ID         string
	Hash       []byte
	TenantID   string
	UserID     string   // "" when minted with the admin key
	SiteIDs    []string // all of TenantID
	Label      string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	HardCapAt  time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
	// IssuerKeyID is the partner key (nk_) that minted the session, ""
	// for one minted by a user or the admin key; revoking the key
	// revokes it. ExternalOperatorID and OperatorDisplayName name the
	// partner's operator it was minted for.
	IssuerKeyID         string
	ExternalOperatorID  string
	OperatorDisplayName string
}

// CreateCLISession stores c. A duplicate id or hash is ErrConflict, an
// unknown tenant or user ErrNotFound.
func (s *sqlStore) CreateCLISession(ctx context.Context, c CLISession) error {
	sites, err := json.Marshal(sitesOrEmpty(c.SiteIDs))
	if err != nil {
		return wrapf(err, "create cli session %s", c.ID)
	}
	_, err = s.exec(ctx, `INSERT INTO cli_sessions
		(id, hash, tenant_id, user_id, site_ids, label, created_at, expires_at, hard_cap_at, last_used_at, revoked_at,
		issuer_key_id, external_operator_id, operator_display_name)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.Hash, c.TenantID, nullStr(c.UserID), string(sites), c.Label,
		ts(c.CreatedAt), ts(c.ExpiresAt), ts(c.HardCapAt), nullTS(c.LastUsedAt), nullTS(c.RevokedAt),
		c.IssuerKeyID, c.ExternalOperatorID, c.OperatorDisplayName)
	return wrapf(err, "create cli session %s", c.ID)
}

const cliCols = `id, hash, tenant_id, COALESCE(user_id, ''), site_ids, label,
	created_at, expires_at, hard_cap_at, last_used_at, revoked_at,
	issuer_key_id, external_operator_id, operator_display_name`

func scanCLISession(r rowScanner) (CLISession, error) {
	var c CLISession
	var sites string
	var created, expires, hardCap int64
	var used, revoked sql.Null[int64]
	err := r.Scan(&c.ID, &c.Hash, &c.TenantID, &c.UserID, &sites, &c.Label,
		&created, &expires, &hardCap, &used, &revoked,
		&c.IssuerKeyID, &c.ExternalOperatorID, &c.OperatorDisplayName)
	if err != nil {
		return CLISession{}, err
	}
	if err := json.Unmarshal([]byte(sites), &c.SiteIDs); err != nil {
		return CLISession{}, fmt.Errorf("cli session %s: site_ids: %w", c.ID, err)
	}
	c.CreatedAt, c.ExpiresAt, c.HardCapAt = fromTS(created), fromTS(expires), fromTS(hardCap)
	c.LastUsedAt, c.RevokedAt = ptrTS(used), ptrTS(revoked)
	return c, nil
}

// GetCLISession returns the session with that id, revoked or expired or
// not; the caller decides.
func (s *sqlStore) GetCLISession(ctx context.Context, id string) (CLISession, error) {
	c, err := scanCLISession(s.db.QueryRowContext(ctx, `SELECT `+cliCols+` FROM cli_sessions WHERE id = ?`, id))
	return c, wrapf(err, "get cli session %s", id)
}

// GetCLISessionByHash returns the session whose token hashes to hash,
// revoked or expired or not.
func (s *sqlStore) GetCLISessionByHash(ctx context.Context, hash []byte) (CLISession, error) {
	c, err := scanCLISession(s.db.QueryRowContext(ctx, `SELECT `+cliCols+` FROM cli_sessions WHERE hash = ?`, hash))
	return c, wrapf(err, "get cli session by hash")
}

// ListCLISessions returns the sessions that include siteID and are neither
// revoked nor expired (nor past their cap) at now, newest first: the
// "Active sessions" of a site.
func (s *sqlStore) ListCLISessions(ctx context.Context, siteID string, now time.Time) ([]CLISession, error) {
	cs, err := queryAll(ctx, s.db, scanCLISession, `SELECT `+cliCols+` FROM cli_sessions
		WHERE revoked_at IS NULL AND expires_at > ? AND hard_cap_at > ?
		AND `+s.d.jsonArrayHas("site_ids")+`
		ORDER BY created_at DESC, id`, ts(now), ts(now), siteID)
	return cs, wrapf(err, "list cli sessions of site %s", siteID)
}

// ListTenantCLISessions returns the tenant's sessions that are neither
// revoked nor expired (nor past their cap) at now, newest first.
func (s *sqlStore) ListTenantCLISessions(ctx context.Context, tenantID string, now time.Time) ([]CLISession, error) {
	cs, err := queryAll(ctx, s.db, scanCLISession, `SELECT `+cliCols+` FROM cli_sessions
		WHERE tenant_id = ? AND revoked_at IS NULL AND expires_at > ? AND hard_cap_at > ?
		ORDER BY created_at DESC, id`, tenantID, ts(now), ts(now))
	return cs, wrapf(err, "list cli sessions of tenant %s", tenantID)
}

// TouchCLISession is one use of a session at now: in one write transaction
// it checks that the session is live (ErrRevoked, ErrExpired once now
// reaches ExpiresAt or HardCapAt, ErrNotFound) and moves ExpiresAt to
// expires, capped at HardCapAt and never backwards, and LastUsedAt to now.
// It returns the session as stored afterwards. Checking and sliding
// together means a session that just expired can never be revived by a
// use racing with the clock.
func (s *sqlStore) TouchCLISession(ctx context.Context, id string, now, expires time.Time) (CLISession, error) {
	var c CLISession
	err := s.write(ctx, func(tx *txn) error {
		var err error
		c, err = scanCLISession(tx.QueryRowContext(ctx, `SELECT `+cliCols+` FROM cli_sessions WHERE id = ?`+tx.d.forUpdate, id))
		if err != nil {
			return err
		}
		switch {
		case c.RevokedAt != nil:
			return ErrRevoked
		case !now.Before(c.ExpiresAt), !now.Before(c.HardCapAt):
			return ErrExpired
		}
		if expires.After(c.HardCapAt) {
			expires = c.HardCapAt
		}
		if expires.After(c.ExpiresAt) {
			c.ExpiresAt = roundTS(expires)
		}
		used := roundTS(now)
		c.LastUsedAt = &used
		_, err = tx.ExecContext(ctx, `UPDATE cli_sessions SET expires_at = ?, last_used_at = ? WHERE id = ?`,
			ts(c.ExpiresAt), ts(used), id)
		return err
	})
	if err != nil {
		return CLISession{}, wrapf(err, "touch cli session %s", id)
	}
	return c, nil
}

// RevokeCLISession marks the session revoked. Revoking it again keeps the
// first time.
func (s *sqlStore) RevokeCLISession(ctx context.Context, id string, at time.Time) error {
	err := s.execOneChange(ctx, Change{Kind: ChangeCLISessionRevoked, ID: id}, `UPDATE cli_sessions SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, ts(at), id)
	return wrapf(err, "revoke cli session %s", id)
}

// ResolveLoopback returns the route of (ip, port) in a CLI's bind plan:
// the newest live handle (not revoked, not expired at now) of that port of
// the device that holds loopback address ip and is not deleted. It is one
// indexed lookup, cheap enough for every connection a CLI opens.
// ErrNotFound if there is none, including for an ip outside 127.0.0.0/8.
func (s *sqlStore) ResolveLoopback(ctx context.Context, ip string, port int, now time.Time) (Route, error) {
	n, ok := loopbackOffset(ip)
	if !ok {
		return Route{}, wrapf(ErrNotFound, "resolve loopback %s:%d", ip, port)
	}
	var r Route
	var expires, revoked sql.Null[int64]
	err := s.db.QueryRowContext(ctx, `SELECT h.handle, h.tenant_id, d.site_id, h.device_id, d.host,
		h.port, h.agent_id, h.expires_at, h.revoked_at
		FROM devices d JOIN handles h ON h.device_id = d.id
		WHERE d.loopback = ? AND d.deleted_at IS NULL AND h.port = ? AND h.revoked_at IS NULL
		AND (h.expires_at IS NULL OR h.expires_at > ?)
		ORDER BY h.created_at DESC, h.handle LIMIT 1`, n, port, ts(now)).
		Scan(&r.Handle, &r.TenantID, &r.SiteID, &r.DeviceID, &r.Host, &r.Port, &r.AgentID, &expires, &revoked)
	if err != nil {
		return Route{}, wrapf(err, "resolve loopback %s:%d", ip, port)
	}
	r.ExpiresAt, r.RevokedAt = ptrTS(expires), ptrTS(revoked)
	return r, nil
}

// loopbackOffset is the inverse of loopbackIP: the offset of an address in
// 127.0.0.0/8, for the addresses CreateDevice hands out.
func loopbackOffset(ip string) (int64, bool) {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is4() {
		return 0, false
	}
	b := a.As4()
	n := int64(b[1])<<16 | int64(b[2])<<8 | int64(b[3])
	if b[0] != 127 || n < firstLoopback || n > lastLoopback {
		return 0, false
	}
	return n, true
}

// sitesOrEmpty stores no sites as [] rather than null.
func sitesOrEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
