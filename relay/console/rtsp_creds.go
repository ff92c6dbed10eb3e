package console

import (
	"errors"
	"net/http"
	"net/url"
	"time"
)

// RTSPCredential is an RTSP credential as the API lists it (never its
// secret): the login a VMS keeps in rtsp://user:secret@relay:9554/….
type RTSPCredential struct {
	ID        string     `json:"id"`
	User      string     `json:"user"`
	Name      string     `json:"name"`
	SiteID    string     `json:"site_id"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// newRTSPCredential is the answer of creating one: the secret and a URL
// template with it, shown once.
type newRTSPCredential struct {
	RTSPCredential
	Secret      string `json:"secret"`
	URLTemplate string `json:"url_template"`
}

type rtspCredsView struct {
	Creds   []RTSPCredential
	Sites   []Site
	More    bool // the tenant has more sites than the form lists
	Name    string
	SiteID  string
	Error   string
	Created *newRTSPCredential
}

// SiteName names a credential's scope for the table.
func (v rtspCredsView) SiteName(id string) string {
	if id == "" {
		return "all sites"
	}
	for _, s := range v.Sites {
		if s.ID == id {
			return s.Name
		}
	}
	return id
}

// rtspCredsPage (GET /rtsp-credentials) lists the tenant's RTSP
// credentials with the form that creates one.
func (h *Handler) rtspCredsPage(w http.ResponseWriter, r *http.Request, c *call) error {
	return h.showRTSPCreds(w, r, c, http.StatusOK, rtspCredsView{})
}

func (h *Handler) showRTSPCreds(w http.ResponseWriter, r *http.Request, c *call, status int, v rtspCredsView) error {
	p, err := c.tenantPath("/rtsp-credentials")
	if err != nil {
		return err
	}
	var list struct {
		Credentials []RTSPCredential `json:"credentials"`
	}
	if err := c.Call("GET", p, nil, &list); err != nil {
		return err
	}
	v.Creds = list.Credentials
	sp, _ := c.tenantPath("/sites?limit=1000")
	var page sitePage
	if err := c.Call("GET", sp, nil, &page); err != nil {
		return err
	}
	v.Sites, v.More = page.Items, page.Next != ""
	return h.render(w, r, c, status, "rtsp-credentials", "rtsp", v)
}

// createRTSPCred (POST /rtsp-credentials) creates a credential for the
// tenant or one site and shows its secret in this answer only.
func (h *Handler) createRTSPCred(w http.ResponseWriter, r *http.Request, c *call) error {
	v := rtspCredsView{Name: formValue(r, "name"), SiteID: formValue(r, "site_id")}
	p, err := c.tenantPath("/rtsp-credentials")
	if err != nil {
		return err
	}
	body := map[string]any{"name": v.Name}
	if v.SiteID != "" {
		body["site_id"] = v.SiteID
	}
	var created newRTSPCredential
	err = c.Call("POST", p, body, &created)
	var ae *APIError
	switch {
	case errors.As(err, &ae) && (ae.Status == http.StatusBadRequest || ae.Status == http.StatusNotFound):
		v.Error = fieldReason(ae.Reason)
		return h.showRTSPCreds(w, r, c, ae.Status, v)
	case err != nil:
		return err
	}
	v.Created, v.Name, v.SiteID = &created, "", ""
	return h.showRTSPCreds(w, r, c, http.StatusOK, v)
}

// revokeRTSPCred (POST /rtsp-credentials/{credId}/revoke) revokes a
// credential: the RTSP sessions it opened end at once.
func (h *Handler) revokeRTSPCred(w http.ResponseWriter, r *http.Request, c *call) error {
	p, err := c.tenantPath("/rtsp-credentials/" + url.PathEscape(r.PathValue("credId")))
	if err != nil {
		return err
	}
	if err := c.Call("DELETE", p, nil, nil); err != nil {
		return err
	}
	return h.redirect(w, r, "/rtsp-credentials", "RTSP credential revoked; its streams have ended.")
}
