package console

import (
	"errors"
	"net/http"
	"net/url"
	"time"
)

// Site is a site as the API lists it.
type Site struct {
	ID               string    `json:"id"`
	TenantID         string    `json:"tenant_id"`
	Name             string    `json:"name"`
	AllowlistVersion int64     `json:"allowlist_version"`
	AllowLoopback    bool      `json:"allow_loopback"`
	DeviceCount      int       `json:"device_count"`
	CreatedAt        time.Time `json:"created_at"`
}

// sitePage is one page of GET /api/tenants/{id}/sites.
type sitePage struct {
	Items []Site `json:"items"`
	Next  string `json:"next"`
}

// newSiteForm is the "+ New site" dialog: open again with the error when
// the relay refused the name.
type newSiteForm struct {
	Open          bool
	Name          string
	AllowLoopback bool
	Error         string
}

type sitesView struct {
	Sites   []Site
	More    string // cursor of the next page
	NewSite newSiteForm
}

// sitesPage (GET /sites) lists the tenant's sites, a page of up to 1,000.
func (h *Handler) sitesPage(w http.ResponseWriter, r *http.Request, c *call) error {
	v, err := h.loadSites(r, c)
	if err != nil {
		return err
	}
	return h.render(w, r, c, http.StatusOK, "sites", "sites", v)
}

func (h *Handler) loadSites(r *http.Request, c *call) (sitesView, error) {
	p, err := c.tenantPath("/sites?limit=1000&cursor=" + url.QueryEscape(r.URL.Query().Get("cursor")))
	if err != nil {
		return sitesView{}, err
	}
	var page sitePage
	if err := c.Call("GET", p, nil, &page); err != nil {
		return sitesView{}, err
	}
	return sitesView{Sites: page.Items, More: page.Next}, nil
}

// createSite (POST /sites) creates a site and shows its page with the
// ready enrollment command. The command holds a one-shot secret, so it is
// rendered in this answer only, never put in a URL.
func (h *Handler) createSite(w http.ResponseWriter, r *http.Request, c *call) error {
	in := newSiteForm{Open: true, Name: formValue(r, "name"), AllowLoopback: r.PostForm.Get("allow_loopback") != ""}
	p, err := c.tenantPath("/sites")
	if err != nil {
		return err
	}
	var created enrollment
	err = c.Call("POST", p, map[string]any{"name": in.Name, "allow_loopback": in.AllowLoopback}, &created)
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusBadRequest {
		in.Error = fieldReason(ae.Reason)
		v, lerr := h.loadSites(r, c)
		if lerr != nil {
			return lerr
		}
		v.NewSite = in
		return h.render(w, r, c, http.StatusBadRequest, "sites", "sites", v)
	}
	if err != nil {
		return err
	}
	return h.showSite(w, r, c, created.ID, siteExtras{Enrollment: &created, Flash: "Site " + in.Name + " created."})
}
