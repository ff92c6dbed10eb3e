package console

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// AuditEvent is an audit record as GET /api/audit lists it.
type AuditEvent struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Target string    `json:"target"`
	Detail string    `json:"detail"`
}

// auditPerPage is the audit page's page size.
const auditPerPage = 100

// auditActions are the actions the relay records, for the filter's
// suggestions; the filter takes any action name.
var auditActions = []string{
	"agent.connect", "agent.enroll", "agent.reject_certificate", "agent.reject_revoked", "agent.reject_unregistered_cn",
	"agent.revoke", "allowlist.refused", "camera.tls_changed", "camera.tls_first_seen", "cli_session.create",
	"cli_session.revoke", "device.create", "device.credentials", "device.delete", "device.update", "handle.create",
	"proxy.admin_open", "rtsp.url_minted", "rtsp_credential.create", "rtsp_credential.revoke", "site.create", "site.update", "tenant.create", "token.create",
	"token.revoke", "tunnel.admin_open", "user.create", "user.signin", "user.signin_failed", "user.signout",
	"user.switch_tenant",
}

// auditForm is the audit page's filter, as the operator typed it.
type auditForm struct {
	Action, Since, Until string
	Error                string
}

type auditView struct {
	Filter  auditForm
	Actions []string
	Events  []AuditEvent
	Next    string // the query of the next (older) page, "" after the last
	First   string // the query of the newest page with this filter, "" on it
}

// auditTime is the filter's time input: a datetime-local value (the
// browser's, minutes or seconds) or RFC 3339, read as UTC.
func auditTime(v string) (time.Time, bool) {
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339} {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// auditPage (GET /audit) is the tenant's audit log, newest first, a page
// of 100: filtered by action and by a time window, and paged back by
// event id (?before=).
func (h *Handler) auditPage(w http.ResponseWriter, r *http.Request, c *call) error {
	q := r.URL.Query()
	v := auditView{Actions: auditActions, Filter: auditForm{
		Action: strings.TrimSpace(q.Get("action")), Since: strings.TrimSpace(q.Get("since")), Until: strings.TrimSpace(q.Get("until")),
	}}
	api := url.Values{"limit": {strconv.Itoa(auditPerPage)}}
	keep := url.Values{}
	if v.Filter.Action != "" {
		api.Set("action", v.Filter.Action)
		keep.Set("action", v.Filter.Action)
	}
	for _, f := range []struct{ name, val string }{{"since", v.Filter.Since}, {"until", v.Filter.Until}} {
		if f.val == "" {
			continue
		}
		t, ok := auditTime(f.val)
		if !ok {
			v.Filter.Error = f.name + ": enter a date and time such as 2026-01-02T15:04 (UTC)"
			return h.render(w, r, c, http.StatusBadRequest, "audit", "audit", v)
		}
		api.Set(f.name, t.Format(time.RFC3339))
		keep.Set(f.name, f.val)
	}
	if b := q.Get("before"); b != "" {
		api.Set("before", b)
		v.First = "?" + keep.Encode()
	}
	p := "/api/audit?" + api.Encode()
	// The API lists a signed-in user's own tenant only: the tenant the
	// session acts in.
	if c.Who.TenantID == "" {
		return errNoTenant
	}
	if err := c.Call("GET", p, nil, &v.Events); err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusBadRequest {
			v.Filter.Error = fieldReason(ae.Reason)
			return h.render(w, r, c, http.StatusBadRequest, "audit", "audit", v)
		}
		return err
	}
	if len(v.Events) == auditPerPage {
		next := url.Values{}
		for k, vs := range keep {
			next[k] = vs
		}
		next.Set("before", strconv.FormatInt(v.Events[len(v.Events)-1].ID, 10))
		v.Next = "?" + next.Encode()
	}
	return h.render(w, r, c, http.StatusOK, "audit", "audit", v)
}
