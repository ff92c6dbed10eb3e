package relay

import (
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/nanodems/connector/relay/store"
)

// auditWindow reads the time filter and the page of GET /api/audit:
// ?since= and ?until= (RFC 3339 times; since <= at < until) and
// ?before= (an event id: the events older than it, the next page after
// a page that ended with that id).
func auditWindow(q url.Values, f *store.AuditFilter) error {
	for _, tf := range []struct {
		name string
		to   *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		v := q.Get(tf.name)
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return fmt.Errorf("%w: %s must be an RFC 3339 time such as 2026-01-02T15:04:05Z", errBadRequest, tf.name)
		}
		*tf.to = t
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return fmt.Errorf("%w: since must be before until", errBadRequest)
	}
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return fmt.Errorf("%w: before must be an event id", errBadRequest)
		}
		f.Before = n
	}
	return nil
}
