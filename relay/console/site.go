package console

import (
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// enrollment is the answer of site creation and of a new enrollment token:
// a one-shot token and the command that uses it.
type enrollment struct {
	ID        string `json:"id"`
	Token     string `json:"enrollment_token"`
	ExpiresAt string `json:"enrollment_expires_at"`
	Command   string `json:"enroll_command"`
}

// siteExtras is what a form adds to the site page it answers with.
type siteExtras struct {
	Enrollment *enrollment // shown once
	Flash      string
	Edit       *portsForm // the ✏ popup, open (with its error)
	Add        *deviceForm
	Delete     *Device // the delete confirmation, open
	RTSPURL    string  // an RTSP pill's URL, without the script
}

type siteView struct {
	Site    Site
	Devices []Device
	More    string
	// Sessions are the site's active CLI sessions (cli_sessions.go).
	Sessions []CLISession
	// Agents are the site's agents and their state, so an installer's
	// agent is seen coming online where it was downloaded.
	Agents []agentRow
	// Streams are the tunnels open through the site's agents now; Today
	// and Spark its bytes since UTC midnight and over the last 24 hours.
	Streams int64
	Today   string
	Spark   template.HTML
	siteExtras
}

// sitePage (GET /sites/{siteId}) is a site: its enrollment command and
// installers, its agents, its devices and their port pills.
// Without the script, ✏ and Delete are links to ?edit= and ?delete=,
// which render the page with that popup open.
func (h *Handler) sitePage(w http.ResponseWriter, r *http.Request, c *call) error {
	var x siteExtras
	q := r.URL.Query()
	for _, id := range []string{q.Get("edit"), q.Get("delete")} {
		if id == "" {
			continue
		}
		var d Device
		if err := c.Call("GET", "/api/devices/"+url.PathEscape(id), nil, &d); err != nil {
			return err
		}
		if d.SiteID != r.PathValue("siteId") {
			return errNotFound
		}
		if q.Get("edit") != "" {
			x.Edit = &portsForm{Device: d, Ports: joinPorts(d.Ports)}
		} else {
			x.Delete = &d
		}
	}
	return h.showSite(w, r, c, r.PathValue("siteId"), x)
}

func joinPorts(ps []int) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ", ")
}

// showSite renders the site page, with what a form adds to it.
func (h *Handler) showSite(w http.ResponseWriter, r *http.Request, c *call, siteID string, x siteExtras) error {
	return h.showSiteStatus(w, r, c, http.StatusOK, siteID, x)
}

func (h *Handler) showSiteStatus(w http.ResponseWriter, r *http.Request, c *call, status int, siteID string, x siteExtras) error {
	v := siteView{siteExtras: x}
	if err := c.Call("GET", "/api/sites/"+url.PathEscape(siteID), nil, &v.Site); err != nil {
		return err
	}
	var page devicePage
	if err := c.Call("GET", "/api/sites/"+url.PathEscape(siteID)+"/devices?limit=1000&cursor="+url.QueryEscape(r.URL.Query().Get("cursor")), nil, &page); err != nil {
		return err
	}
	v.Devices, v.More = page.Items, page.Next
	sessions, err := siteCLISessions(c, siteID)
	if err != nil {
		return err
	}
	v.Sessions = sessions
	var agents []Agent
	if err := c.Call("GET", "/api/sites/"+url.PathEscape(siteID)+"/agents", nil, &agents); err != nil {
		return err
	}
	for _, a := range agents {
		v.Agents = append(v.Agents, rowOf(a))
		v.Streams += a.ActiveStreams
	}
	var tr siteTraffic
	if err := c.Call("GET", "/api/sites/"+url.PathEscape(siteID)+"/stats?range=24h", nil, &tr); err != nil {
		return err
	}
	v.Today = humanBytes(uint64(max(tr.Today.BytesIn+tr.Today.BytesOut, 0)))
	v.Spark = sparkline(tr.hours(), "Site "+v.Site.Name)
	for i := range v.Devices {
		v.Devices[i].Today = humanBytes(uint64(max(tr.deviceToday(v.Devices[i]), 0)))
	}
	return h.renderFlash(w, r, c, status, "site", "sites", v, x.Flash)
}

// fieldReason is the API's reason without its "bad request: " lead.
func fieldReason(reason string) string {
	return strings.TrimPrefix(reason, "bad request: ")
}

// newEnrollment (POST /sites/{siteId}/enrollment) mints a fresh one-shot
// enrollment token and shows the site page with its command.
func (h *Handler) newEnrollment(w http.ResponseWriter, r *http.Request, c *call) error {
	siteID := r.PathValue("siteId")
	var e enrollment
	if err := c.Call("POST", "/api/sites/"+url.PathEscape(siteID)+"/enrollment-tokens", nil, &e); err != nil {
		return err
	}
	return h.showSite(w, r, c, siteID, siteExtras{Enrollment: &e})
}
