package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// sqlStore is the one implementation of Store over database/sql, shared by
// SQLite and Postgres: the queries are written once and the dialect adapts
// them. The backends add how they open, migrate and carry change
// notifications.
//
// Times are stored as microseconds since the Unix epoch and read back in
// UTC, so a stored time equals the original truncated to the microsecond.
type sqlStore struct {
	db conn
	d  *dialect

	// wmu serializes write transactions where the dialect asks for it
	// (SQLite). SQLite allows one writer at a time anyway; queuing writers
	// here rather than in SQLite's busy handler means they never see
	// SQLITE_BUSY, and a transaction that reads before it writes cannot
	// lose its snapshot to another writer. Readers do not take it.
	wmu sync.Mutex

	feed *feed
	// origin names this store in the notifications it sends.
	origin string
	// publish carries the changes of a committed transaction to the
	// other stores on the same database, where the backend has to do it
	// itself (SQLite; PostgreSQL delivers NOTIFY on commit).
	publish func([]Change)
}

// conn is a *sql.DB that speaks the store's dialect.
type conn struct {
	db  *sql.DB
	d   *dialect
	lat *latencyHook // the store's LatencyObserver; shared by copies
}

func (c conn) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	defer c.lat.since("read", time.Now())
	return c.db.QueryContext(ctx, c.d.rebind(q), c.d.args(args)...)
}

func (c conn) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	defer c.lat.since("read", time.Now())
	return c.db.QueryRowContext(ctx, c.d.rebind(q), c.d.args(args)...)
}

func (c conn) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	defer c.lat.since("write", time.Now())
	return c.db.ExecContext(ctx, c.d.rebind(q), c.d.args(args)...)
}

// txn is a write transaction in the store's dialect. Changes it notes are
// sent with it: in the transaction itself on PostgreSQL (NOTIFY is
// delivered on commit), after the commit on SQLite.
type txn struct {
	tx      *sql.Tx
	d       *dialect
	changes []Change
	origin  string
}

func (t *txn) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(ctx, t.d.rebind(q), t.d.args(args)...)
}

func (t *txn) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, t.d.rebind(q), t.d.args(args)...)
}

func (t *txn) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(ctx, t.d.rebind(q), t.d.args(args)...)
}

// querier is conn or *txn.
type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

// Close closes the database.
func (s *sqlStore) Close() error { return s.db.db.Close() }

// writeAttempts bounds the retries of a transaction PostgreSQL aborted to
// break a deadlock or a serialization conflict; both are safe to rerun.
const writeAttempts = 5

// write runs fn in a write transaction, committing if it returns nil.
// fn must use only tx: s.db would see a different connection.
func (s *sqlStore) write(ctx context.Context, fn func(tx *txn) error) error {
	defer s.db.lat.since("write", time.Now())
	if s.d.serialWrites {
		s.wmu.Lock()
		defer s.wmu.Unlock()
	}
	var err error
	for range writeAttempts {
		var changes []Change
		changes, err = s.writeOnce(ctx, fn)
		if err == nil {
			if len(changes) > 0 && s.publish != nil {
				s.publish(changes)
			}
			return nil
		}
		if !retryable(err) {
			return err
		}
	}
	return err
}

func (s *sqlStore) writeOnce(ctx context.Context, fn func(tx *txn) error) ([]Change, error) {
	sqlTx, err := s.db.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	tx := &txn{tx: sqlTx, d: s.d, origin: s.origin}
	if err := fn(tx); err != nil {
		sqlTx.Rollback()
		return nil, err
	}
	return tx.changes, sqlTx.Commit()
}

// retryable reports a PostgreSQL abort that a rerun of the transaction
// resolves: serialization_failure or deadlock_detected.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// exec runs one statement as a write transaction and reports whether it
// changed a row.
func (s *sqlStore) exec(ctx context.Context, query string, args ...any) (changed bool, err error) {
	return s.execWith(ctx, nil, query, args...)
}

// execChange is exec that, if a row changed, sends c with the write
// (changes.go).
func (s *sqlStore) execChange(ctx context.Context, c Change, query string, args ...any) (changed bool, err error) {
	return s.execWith(ctx, &c, query, args...)
}

func (s *sqlStore) execWith(ctx context.Context, c *Change, query string, args ...any) (changed bool, err error) {
	err = s.write(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		changed = n > 0
		if changed && c != nil {
			return tx.notify(ctx, *c)
		}
		return nil
	})
	return changed, err
}

// execOne is exec for statements that must hit exactly one row, such as
// revocations by id: an unknown id is ErrNotFound.
func (s *sqlStore) execOne(ctx context.Context, query string, args ...any) error {
	return one(s.exec(ctx, query, args...))
}

// execOneChange is execOne that sends c with the write.
func (s *sqlStore) execOneChange(ctx context.Context, c Change, query string, args ...any) error {
	return one(s.execChange(ctx, c, query, args...))
}

// one is ErrNotFound for a statement that changed no row.
func one(changed bool, err error) error {
	if err == nil && !changed {
		err = ErrNotFound
	}
	return err
}

// wrapf adds "store: <context>: " to err and translates driver errors into
// the package's sentinels, keeping the original in the chain.
func wrapf(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	var se *sqlite.Error
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &se):
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			err = fmt.Errorf("%w: %w", ErrConflict, err)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			// A row that refers to a missing parent (a site of an
			// unknown tenant, say): the parent was not found.
			err = fmt.Errorf("%w: %w", ErrNotFound, err)
		}
	case errors.As(err, &pe):
		switch pe.Code {
		case "23505": // unique_violation
			err = fmt.Errorf("%w: %w", ErrConflict, err)
		case "23503": // foreign_key_violation
			err = fmt.Errorf("%w: %w", ErrNotFound, err)
		}
	}
	return fmt.Errorf("store: %s: %w", fmt.Sprintf(format, args...), err)
}

// rowScanner is *sql.Row or *sql.Rows.
type rowScanner interface {
	Scan(dest ...any) error
}

// queryAll runs a query and scans every row with scan.
func queryAll[T any](ctx context.Context, db querier, scan func(rowScanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// ts is the stored form of t.
func ts(t time.Time) int64 { return t.UnixMicro() }

// fromTS is the inverse of ts.
func fromTS(us int64) time.Time { return time.UnixMicro(us).UTC() }

// roundTS returns t as it will read back from the store.
func roundTS(t time.Time) time.Time { return fromTS(ts(t)) }

// nullTS is the stored form of an optional time.
func nullTS(t *time.Time) any {
	if t == nil {
		return nil
	}
	return ts(*t)
}

// ptrTS is the inverse of nullTS.
func ptrTS(n sql.Null[int64]) *time.Time {
	if !n.Valid {
		return nil
	}
	t := fromTS(n.V)
	return &t
}

// nullStr stores an empty optional reference (a superadmin's tenant) as
// NULL, which foreign keys accept.
func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}
