package store

import (
	"database/sql/driver"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Unavailable reports an error that says the database could not be
// reached (refused, no answer) or is shutting down, as
// opposed to one about the request: the caller should try again later,
// and an HTTP client should see 503, not 500. Measured with PostgreSQL
// stopped under two relays (e2e/fleet TestFleetDatabaseAway): API writes
// and opens with an uncached token fail at once with such an error.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	var ce *pgconn.ConnectError
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &ce), errors.Is(err, driver.ErrBadConn):
		return true
	case errors.As(err, &pe):
		// Class 08: connection exception; 57P01-57P03: the server is
		// shutting down, crashed, or not yet accepting connections.
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	return false
}
