package store

import (
	"strconv"
	"strings"
	"sync"
)

// dialect is what differs between the SQL of SQLite and of PostgreSQL.
// Every query is written once, with SQLite's '?' placeholders; the few
// places where the engines part ways ask the dialect for a fragment, so
// there is one implementation of each query and the differences are all
// listed here.
type dialect struct {
	name string
	// numbered placeholders: PostgreSQL's $1, $2 … instead of '?'.
	numbered bool
	// serialWrites queues write transactions in the process (SQLite has
	// one writer; PostgreSQL runs them side by side under row locks).
	serialWrites bool
	// forUpdate locks the rows a read-then-write transaction selects.
	// SQLite needs none: its write transactions are serialized.
	forUpdate string
	// boolAsInt sends Go bools as 0/1: the schema's booleans are INTEGER
	// in both engines, and PostgreSQL does not cast bool to integer.
	boolAsInt bool
	// notify sends changes with pg_notify inside the transaction.
	notify bool

	rebound sync.Map // query → rebound query
}

var (
	sqliteDialect   = &dialect{name: "sqlite", serialWrites: true}
	postgresDialect = &dialect{name: "postgres", numbered: true, forUpdate: " FOR UPDATE", boolAsInt: true, notify: true}
)

// rebind returns q with its '?' placeholders numbered for PostgreSQL.
// Queries hold no '?' inside string literals or identifiers; quoted text
// is skipped anyway, so a literal '?' stays one.
func (d *dialect) rebind(q string) string {
	if !d.numbered || !strings.Contains(q, "?") {
		return q
	}
	if v, ok := d.rebound.Load(q); ok {
		return v.(string)
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n, quote := 0, byte(0)
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	out := b.String()
	d.rebound.Store(q, out)
	return out
}

// args converts arguments the engine's driver does not take as they are.
func (d *dialect) args(args []any) []any {
	if !d.boolAsInt {
		return args
	}
	var out []any
	for i, a := range args {
		if v, ok := a.(bool); ok {
			if out == nil {
				out = append([]any(nil), args...)
			}
			out[i] = int64(0)
			if v {
				out[i] = int64(1)
			}
		}
	}
	if out == nil {
		return args
	}
	return out
}

// jsonArrayHas is a condition true when the JSON array of strings in
// column col holds the value of the one placeholder it contains.
func (d *dialect) jsonArrayHas(col string) string {
	if d.numbered {
		// Not jsonb's '?' operator: it would read as a placeholder.
		return `EXISTS (SELECT 1 FROM jsonb_array_elements_text((` + col + `)::jsonb) AS j (value) WHERE j.value = ?)`
	}
	return `EXISTS (SELECT 1 FROM json_each(` + col + `) WHERE value = ?)`
}
