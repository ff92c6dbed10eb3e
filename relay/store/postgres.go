package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// Postgres is the Store of relays that share one database: the same
// queries as SQLite (sqlStore), through pgx's database/sql driver, and the
// change feed over LISTEN/NOTIFY.
//
// Each relay holds up to PostgresOptions.MaxConns pooled connections plus
// one for LISTEN; the server's max_connections must exceed relays ×
// (MaxConns + 1) plus whatever else connects.
type Postgres struct {
	sqlStore
	dsn    string
	log    *slog.Logger
	cancel context.CancelFunc
	done   sync.WaitGroup
}

var _ Store = (*Postgres)(nil)

// PostgresOptions tune OpenPostgres.
type PostgresOptions struct {
	// MaxConns bounds the relay's pool (<= 0: DefaultPostgresConns).
	MaxConns int
	// Log receives the change listener's reconnects (nil: slog.Default).
	Log *slog.Logger
}

// DefaultPostgresConns is the pool size of a relay: the store is off the
// per-byte path (routes and tokens are cached), so a handful of
// connections carries tunnel opens, API calls and heartbeats.
const DefaultPostgresConns = 16

// OpenPostgres connects to the PostgreSQL database at dsn (a postgres://
// URL or a key=value string), brings its schema up to date under the
// migration lock and starts listening for other relays' changes.
func OpenPostgres(ctx context.Context, dsn string, o PostgresOptions) (*Postgres, error) {
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultPostgresConns
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if _, err := pgx.ParseConfig(dsn); err != nil {
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	db.SetMaxOpenConns(o.MaxConns)
	db.SetMaxIdleConns(o.MaxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	origin := make([]byte, 8)
	rand.Read(origin)
	s := &Postgres{
		sqlStore: sqlStore{db: conn{db: db, d: postgresDialect, lat: &latencyHook{}}, d: postgresDialect, feed: newFeed(), origin: hex.EncodeToString(origin)},
		dsn:      dsn,
		log:      o.Log,
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	// The first LISTEN is in place before Open returns, so a change made
	// by another relay after it is never missed.
	l, err := s.listen(ctx)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.done.Add(1)
	go s.listenLoop(lctx, l)
	return s, nil
}

// Close stops the listener, ends the subscriptions and closes the pool.
func (s *Postgres) Close() error {
	s.cancel()
	s.done.Wait()
	s.feed.close()
	return s.sqlStore.Close()
}

// Notify sends c to the other relays on the database.
func (s *Postgres) Notify(ctx context.Context, c Change) error {
	_, err := s.db.ExecContext(ctx, `SELECT pg_notify(?, ?)`, notifyChannel, encodeChange(s.origin, c))
	return wrapf(err, "notify %s", c.Kind)
}

// listen opens the connection dedicated to LISTEN. It is not a pooled
// one: a LISTEN belongs to its session, and the pool would hand the
// session to queries.
func (s *Postgres) listen(ctx context.Context) (*pgx.Conn, error) {
	l, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if _, err := l.Exec(ctx, `LISTEN `+notifyChannel); err != nil {
		l.Close(context.Background())
		return nil, fmt.Errorf("listen: %w", err)
	}
	return l, nil
}

// Reconnect backoff of the listener.
const (
	listenRetryMin = 100 * time.Millisecond
	listenRetryMax = 5 * time.Second
)

// listenLoop hands notifications to the feed until ctx ends. When the
// connection breaks it reconnects; notifications sent meanwhile are lost,
// so once listening again it sends ChangeResync.
func (s *Postgres) listenLoop(ctx context.Context, l *pgx.Conn) {
	defer s.done.Done()
	wait := listenRetryMin
	for {
		err := s.receive(ctx, l)
		l.Close(context.Background())
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("store: change listener lost its connection", "err", err)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			l, err = s.listen(ctx)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			wait = min(2*wait, listenRetryMax)
			s.log.Warn("store: change listener reconnect", "err", err, "retry_in", wait)
		}
		wait = listenRetryMin
		s.log.Info("store: change listener reconnected; resyncing")
		s.feed.send(Change{Kind: ChangeResync})
	}
}

// receive forwards l's notifications until it fails or ctx ends.
func (s *Postgres) receive(ctx context.Context, l *pgx.Conn) error {
	for {
		n, err := l.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		var w wireChange
		if err := json.Unmarshal([]byte(n.Payload), &w); err != nil || w.Kind == "" {
			s.log.Warn("store: malformed change notification", "payload", n.Payload)
			continue
		}
		if w.Origin == s.origin {
			continue
		}
		s.feed.send(w.Change)
	}
}
