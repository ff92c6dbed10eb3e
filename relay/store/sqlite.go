package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// SQLite is the embedded Store: one database file in WAL mode, opened
// through the pure-Go modernc.org/sqlite driver.
//
// Times are stored as microseconds since the Unix epoch and read back in
// UTC, so a stored time equals the original truncated to the microsecond.
type SQLite struct {
	db *sql.DB

	// wmu serializes write transactions. SQLite allows one writer at a
	// time anyway; queuing writers here rather than in SQLite's busy
	// handler means they never see SQLITE_BUSY, and a transaction that
	// reads before it writes cannot lose its snapshot to another writer.
	// Readers do not take it: WAL lets them run beside the writer.
	wmu sync.Mutex
}

var _ Store = (*SQLite)(nil)

// maxConns bounds the pool. Every connection holds its own page cache, and
// only one of them can write at a time.
const maxConns = 8

// OpenSQLite opens or creates the database file at path and brings its
// schema up to date.
func OpenSQLite(path string) (*SQLite, error) {
	// The driver hands "file:" names to SQLite as URIs, where '?' and '#'
	// end the path and '%' starts an escape.
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	dsn := "file:" + esc +
		"?_pragma=busy_timeout(5000)" +
		"&_pragma=journal_mode(WAL)" +
		"&_pragma=foreign_keys(1)" +
		// BEGIN IMMEDIATE takes the write lock up front, so a writer in
		// another process waits in busy_timeout instead of failing later.
		"&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	s := &SQLite{db: db}
	if err := s.migrate(context.Background()); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return s, nil
}

// Close closes the database.
func (s *SQLite) Close() error { return s.db.Close() }

// write runs fn in a write transaction, committing if it returns nil.
// fn must use only tx: s.db would see a different connection.
func (s *SQLite) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// exec runs one statement as a write transaction and reports whether it
// changed a row.
func (s *SQLite) exec(ctx context.Context, query string, args ...any) (changed bool, err error) {
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		changed = n > 0
		return err
	})
	return changed, err
}

// execOne is exec for statements that must hit exactly one row, such as
// revocations by id: an unknown id is ErrNotFound.
func (s *SQLite) execOne(ctx context.Context, query string, args ...any) error {
	changed, err := s.exec(ctx, query, args...)
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
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			err = fmt.Errorf("%w: %w", ErrConflict, err)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			// A row that refers to a missing parent (a site of an
			// unknown tenant, say): the parent was not found.
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
func queryAll[T any](ctx context.Context, db *sql.DB, scan func(rowScanner) (T, error), query string, args ...any) ([]T, error) {
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
