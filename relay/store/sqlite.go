package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// SQLite is the embedded Store: one database file in WAL mode, opened
// through the pure-Go modernc.org/sqlite driver.
type SQLite struct {
	sqlStore
	path string // absolute, the key of the process's change fan-out
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
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	s := &SQLite{sqlStore: sqlStore{db: conn{db: db, d: sqliteDialect, lat: &latencyHook{}}, d: sqliteDialect, feed: newFeed()}, path: abs}
	if err := s.migrate(context.Background()); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s.publish = func(cs []Change) { localFiles.publish(s, cs) }
	localFiles.join(s)
	return s, nil
}

// Close closes the database and ends the subscriptions to its changes.
func (s *SQLite) Close() error {
	localFiles.leave(s)
	s.feed.close()
	return s.sqlStore.Close()
}

// Notify sends c to the other stores open on the same file in this
// process.
func (s *SQLite) Notify(ctx context.Context, c Change) error {
	localFiles.publish(s, []Change{c})
	return nil
}
