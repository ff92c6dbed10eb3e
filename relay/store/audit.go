package store

import (
	"context"
	"fmt"
	"strings"
)

// defaultAuditLimit is the page size when AuditFilter.Limit is not set.
const defaultAuditLimit = 100

// AppendAudit records e. The store assigns the ID, ignoring e.ID.
func (s *sqlStore) AppendAudit(ctx context.Context, e AuditEvent) error {
	err := s.write(ctx, func(tx *txn) error { return appendAudit(ctx, tx, e) })
	return wrapf(err, "append audit %s", e.Action)
}

// appendAudit records e inside tx.
func appendAudit(ctx context.Context, tx *txn, e AuditEvent) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO audit_events (at, tenant_id, actor, action, target, detail)
		VALUES (?, ?, ?, ?, ?, ?)`, ts(e.At), e.TenantID, e.Actor, e.Action, e.Target, e.Detail)
	if err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return nil
}

// ListAudit returns the events matching f, newest first. IDs grow with
// every append, so they order events even when clocks do not.
func (s *sqlStore) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	var where []string
	var args []any
	if f.TenantID != "" {
		where, args = append(where, "tenant_id = ?"), append(args, f.TenantID)
	}
	if f.Action != "" {
		where, args = append(where, "action = ?"), append(args, f.Action)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "at >= ?"), append(args, ts(f.Since))
	}
	if !f.Until.IsZero() {
		where, args = append(where, "at < ?"), append(args, ts(f.Until))
	}
	if f.Before > 0 {
		where, args = append(where, "id < ?"), append(args, f.Before)
	}
	q := `SELECT id, at, tenant_id, actor, action, target, detail FROM audit_events`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultAuditLimit
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	es, err := queryAll(ctx, s.db, scanAudit, q, args...)
	return es, wrapf(err, "list audit")
}

func scanAudit(r rowScanner) (AuditEvent, error) {
	var e AuditEvent
	var at int64
	if err := r.Scan(&e.ID, &at, &e.TenantID, &e.Actor, &e.Action, &e.Target, &e.Detail); err != nil {
		return AuditEvent{}, err
	}
	e.At = fromTS(at)
	return e, nil
}
