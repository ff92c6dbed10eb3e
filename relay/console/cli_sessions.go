package console

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// CLISession is a CLI session as the API lists it (never its token).
type CLISession struct {
	ID          string     `json:"id"`
	SiteIDs     []string   `json:"site_ids"`
	Label       string     `json:"label"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   time.Time  `json:"expires_at"`
	HardCapAt   time.Time  `json:"hard_cap_at"`
	LastUsedAt  *time.Time `json:"last_used_at"`
	Connections int        `json:"connections"`
}

// LastUsed is the session's last use for the table: zero if never.
func (c CLISession) LastUsed() time.Time {
	if c.LastUsedAt == nil {
		return time.Time{}
	}
	return *c.LastUsedAt
}

// newCLISession is the answer of POST /api/cli/sessions: the ops_ token
// and the command that uses it, shown once.
type newCLISession struct {
	ID      string `json:"id"`
	Token   string `json:"token"`
	Command string `json:"command"`
	Label   string `json:"label"`
}

// cliForm is the "Open CLI session" form: the sites to pick from, the
// ones picked, and the relay's refusal of the last try.
type cliForm struct {
	Sites   []Site
	More    bool // the tenant has more sites than the form lists
	Picked  []string
	Label   string
	Error   string
	Created *newCLISession // the one-shot dialog
	// Tunnels are the relay's nanodems-tunnel downloads, linked from the
	// dialog.
	Tunnels []DownloadFile
}

// Checked says whether site id is picked.
func (f cliForm) Checked(id string) bool { return slices.Contains(f.Picked, id) }

// cliSessionsPage (GET /cli-sessions) is the "Open CLI session" form:
// a checkbox per site of the tenant (?site= ticks one, as the site
// page's button does).
func (h *Handler) cliSessionsPage(w http.ResponseWriter, r *http.Request, c *call) error {
	f := cliForm{Picked: r.URL.Query()["site"]}
	if err := h.loadCLISites(c, &f); err != nil {
		return err
	}
	return h.render(w, r, c, http.StatusOK, "cli-sessions", "cli", f)
}

// loadCLISites fills the form's sites: the first page of the tenant's.
func (h *Handler) loadCLISites(c *call, f *cliForm) error {
	p, err := c.tenantPath("/sites?limit=1000")
	if err != nil {
		return err
	}
	var page sitePage
	if err := c.Call("GET", p, nil, &page); err != nil {
		return err
	}
	f.Sites, f.More = page.Items, page.Next != ""
	return nil
}

// createCLISession (POST /cli-sessions) mints an ops_ session for the
// picked sites and answers with the one-shot dialog: the token and its
// command are in this answer only, never in a URL or a later page.
func (h *Handler) createCLISession(w http.ResponseWriter, r *http.Request, c *call) error {
	f := cliForm{Picked: r.PostForm["site_id"], Label: formValue(r, "label")}
	if err := h.loadCLISites(c, &f); err != nil {
		return err
	}
	status := http.StatusOK
	var created newCLISession
	err := c.Call("POST", "/api/cli/sessions", map[string]any{"site_ids": nonNil(f.Picked), "label": f.Label}, &created)
	var ae *APIError
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusBadRequest:
		status, f.Error = http.StatusBadRequest, fieldReason(ae.Reason)
		if len(f.Picked) == 0 {
			f.Error = "sites: pick at least one site"
		}
	case err != nil:
		return err
	default:
		f.Created = &created
		var files []DownloadFile
		if err := c.Call("GET", "/api/downloads", nil, &files); err != nil {
			return err
		}
		for _, df := range files {
			if df.Program == "nanodems-tunnel" {
				f.Tunnels = append(f.Tunnels, df)
			}
		}
	}
	return h.render(w, r, c, status, "cli-sessions", "cli", f)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// revokeCLISession (POST /cli-sessions/{sessionId}/revoke) revokes a
// session; its running nanodems-tunnel exits on its next request. The
// answer goes back to the site page the Revoke button was on.
func (h *Handler) revokeCLISession(w http.ResponseWriter, r *http.Request, c *call) error {
	id := r.PathValue("sessionId")
	if err := c.Call("DELETE", "/api/cli/sessions/"+url.PathEscape(id), nil, nil); err != nil {
		return err
	}
	to := "/cli-sessions"
	if site := formValue(r, "site_id"); site != "" {
		to = "/sites/" + url.PathEscape(site) + "#cli-sessions"
	}
	return h.redirect(w, r, to, "CLI session revoked; its running nanodems-tunnel exits on its next request.")
}

// siteCLISessions is the site page's Active sessions list.
func siteCLISessions(c *call, siteID string) ([]CLISession, error) {
	var out []CLISession
	err := c.Call("GET", "/api/sites/"+url.PathEscape(siteID)+"/cli-sessions", nil, &out)
	return out, err
}
