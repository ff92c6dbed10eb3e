package store

import (
	"context"
	"errors"
	"strings"
)

// Open opens the store that database names: a postgres:// or
// postgresql:// URL is a PostgreSQL database (relays that run as one
// share it); "sqlite:PATH" or a plain PATH is an SQLite file. An empty
// name is an error: the relay's default (SQLite in its data directory)
// is the relay's to choose.
func Open(ctx context.Context, database string, o PostgresOptions) (Store, error) {
	switch {
	case database == "":
		return nil, errors.New("store: no database named")
	case strings.HasPrefix(database, "postgres://"), strings.HasPrefix(database, "postgresql://"):
		return OpenPostgres(ctx, database, o)
	default:
		return OpenSQLite(strings.TrimPrefix(database, "sqlite:"))
	}
}
