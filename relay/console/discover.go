package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// The Discover page of a site (GET /sites/{siteId}/discover): "Run
// discovery" asks the site's agent for an ONVIF WS-Discovery of its LAN,
// "Bulk add" for a probe of a range's ports; either is a run whose
// results fill the page as the agent reports them (the script polls
// the page while the run is going; without it, a reload shows what has
// come). Ticked rows are added in one bulk request, each with the
// ports the run suggests (the API's add_ports).

// Run is a discovery or a probe as the API shows it
// (GET /api/sites/{siteId}/runs/{runId}).
type Run struct {
	ID        string     `json:"id"`
	Kind      string     `json:"kind"`
	State     string     `json:"state"`
	Error     string     `json:"error"`
	Range     string     `json:"range"`
	Ports     []int      `json:"ports"`
	Done      int        `json:"done"`
	Total     int        `json:"total"`
	StartedAt time.Time  `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at"`
	Found     []Found    `json:"found"`
}

// Found is one host of a run.
type Found struct {
	Host         string `json:"host"`
	Ports        []int  `json:"ports"`
	Name         string `json:"name"`
	Manufacturer string `json:"manufacturer"`
	Model        string `json:"model"`
	NeedsLogin   bool   `json:"needs_login"`
	Added        bool   `json:"added"`
	AddPorts     []int  `json:"add_ports"`
}

// Running reports whether the agent is still at it.
func (r *Run) Running() bool { return r.State == "running" }

// Percent is how far a probe is, for its progress bar.
func (r *Run) Percent() int {
	if r.Total == 0 {
		return 0
	}
	return r.Done * 100 / r.Total
}

// probeForm is the bulk add form, kept with its error to show again.
type probeForm struct {
	Range, Ports string
	Error        string
}

type discoverView struct {
	Site  Site
	Run   *Run
	Probe probeForm
	Error string // a refusal of "Run discovery" (no agent, agent too old)
}

// discoverPage (GET /sites/{siteId}/discover[?run=]) is the page, with a
// run's results when it names one.
func (h *Handler) discoverPage(w http.ResponseWriter, r *http.Request, c *call) error {
	return h.showDiscover(w, r, c, http.StatusOK, discoverView{})
}

func (h *Handler) showDiscover(w http.ResponseWriter, r *http.Request, c *call, status int, v discoverView) error {
	siteID := r.PathValue("siteId")
	if err := c.Call("GET", "/api/sites/"+url.PathEscape(siteID), nil, &v.Site); err != nil {
		return err
	}
	if id := r.URL.Query().Get("run"); id != "" && v.Run == nil {
		var run Run
		if err := c.Call("GET", "/api/sites/"+url.PathEscape(siteID)+"/runs/"+url.PathEscape(id), nil, &run); err != nil {
			return err
		}
		v.Run = &run
	}
	return h.render(w, r, c, status, "discover", "sites", v)
}

// runDiscovery (POST /sites/{siteId}/discover) starts a discovery and
// shows its page.
func (h *Handler) runDiscovery(w http.ResponseWriter, r *http.Request, c *call) error {
	siteID := r.PathValue("siteId")
	var run Run
	if err := c.Call("POST", "/api/sites/"+url.PathEscape(siteID)+"/discoveries", nil, &run); err != nil {
		if reason, ok := runRefusal(err); ok {
			return h.showDiscover(w, r, c, http.StatusConflict, discoverView{Error: reason})
		}
		return err
	}
	return h.redirect(w, r, "/sites/"+url.PathEscape(siteID)+"/discover?run="+url.QueryEscape(run.ID), "")
}

// runProbe (POST /sites/{siteId}/probe) starts a probe of the form's
// range and shows its page; a bad range comes back with the reason.
func (h *Handler) runProbe(w http.ResponseWriter, r *http.Request, c *call) error {
	siteID := r.PathValue("siteId")
	f := probeForm{Range: formValue(r, "range"), Ports: formValue(r, "ports")}
	refuse := func(status int, reason string) error {
		f.Error = reason
		return h.showDiscover(w, r, c, status, discoverView{Probe: f})
	}
	if f.Range == "" {
		return refuse(http.StatusBadRequest, "range: enter an IP address, a range a.b.c.d-e.f.g.h or a CIDR a.b.c.d/n")
	}
	body := map[string]any{"range": f.Range}
	if f.Ports != "" {
		extra, err := parsePorts(f.Ports)
		if err != nil {
			return refuse(http.StatusBadRequest, err.Error())
		}
		ports := []int{80, 443, 554}
		for _, p := range extra {
			if !slices.Contains(ports, p) {
				ports = append(ports, p)
			}
		}
		body["ports"] = ports
	}
	var run Run
	err := c.Call("POST", "/api/sites/"+url.PathEscape(siteID)+"/probes", body, &run)
	if reason, ok := badRequest(err); ok {
		return refuse(http.StatusBadRequest, reason)
	}
	if reason, ok := runRefusal(err); ok {
		return refuse(http.StatusConflict, reason)
	}
	if err != nil {
		return err
	}
	return h.redirect(w, r, "/sites/"+url.PathEscape(siteID)+"/discover?run="+url.QueryEscape(run.ID), "")
}

// runRefusal is an API refusal to start a run that the page shows in
// place: no agent online (503), an agent too old (409), too many runs
// (429).
func runRefusal(err error) (string, bool) {
	var ae *APIError
	if !errors.As(err, &ae) {
		return "", false
	}
	switch ae.Status {
	case http.StatusConflict, http.StatusServiceUnavailable, http.StatusTooManyRequests:
		return ae.Reason, true
	}
	return "", false
}

// addFound (POST /sites/{siteId}/runs/{runId}/add) adds the ticked hosts
// of a run as devices, in one bulk request: each with the ports the run
// suggests for it and what it said of itself (name, manufacturer,
// model). Hosts already added are skipped.
func (h *Handler) addFound(w http.ResponseWriter, r *http.Request, c *call) error {
	siteID, runID := r.PathValue("siteId"), r.PathValue("runId")
	back := "/sites/" + url.PathEscape(siteID) + "/discover?run=" + url.QueryEscape(runID)
	var run Run
	if err := c.Call("GET", "/api/sites/"+url.PathEscape(siteID)+"/runs/"+url.PathEscape(runID), nil, &run); err != nil {
		return err
	}
	ticked := r.PostForm["host"]
	var rows []map[string]any
	var names []string
	for _, f := range run.Found {
		if f.Added || !slices.Contains(ticked, f.Host) || len(f.AddPorts) == 0 {
			continue
		}
		rows = append(rows, map[string]any{"host": f.Host, "ports": f.AddPorts, "label": f.Name, "manufacturer": f.Manufacturer, "model": f.Model})
		names = append(names, f.Host)
	}
	if len(rows) == 0 {
		return h.redirect(w, r, back, "Tick the hosts to add first.")
	}
	var out struct {
		AllowlistVersion int64 `json:"allowlist_version"`
		Devices          []Device
	}
	err := c.Call("POST", "/api/sites/"+url.PathEscape(siteID)+"/devices/bulk", map[string]any{"devices": rows}, &out)
	if reason, ok := badRequest(err); ok {
		return h.redirect(w, r, back, "Nothing was added: "+reason)
	}
	if err != nil {
		return err
	}
	return h.redirect(w, r, "/sites/"+url.PathEscape(siteID),
		fmt.Sprintf("%d devices added (%s); allowlist v%d pushed to the site's agents.", len(out.Devices), strings.Join(names, ", "), out.AllowlistVersion))
}
