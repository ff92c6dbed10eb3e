package console

import (
	"net/http"
	"net/url"
)

// A device port's handle is the capability in its /c/{handle}/ and
// rtsp:// URLs; whoever holds the URL holds the camera. The site page
// lists each device's handles with Revoke (the URL stops working; the
// port gets a new handle the next time it is opened) and Rotate (a new
// handle at once, for a URL that leaked). Both run the API's own routes
// (DELETE /api/handles/{handle}, POST /api/handles/{handle}/rotate):
// the same checks, tunnel cuts and audit records.

// handleAction is one of a handle's buttons on the site page, with its
// confirm dialog (#rotate-handle, #revoke-handle).
type handleAction struct {
	Verb, Label, Class string
	Says               string // what confirming does, in the dialog
}

// HandleActions are the buttons of each handle on the site page.
func (siteView) HandleActions() []handleAction {
	return []handleAction{
		{Verb: "rotate", Label: "Rotate", Says: "The port gets a new handle; its URLs with the old one (/c/…, rtsp://) answer 404 at once and its open tunnels are cut."},
		{Verb: "revoke", Label: "Revoke", Class: "danger", Says: "Its URLs answer 404 at once and its open tunnels are cut. The port has no handle until it is opened again."},
	}
}

// handleBack is where a handle's button returns: the device's row on its
// site page, or the sites list when the form names no site.
func handleBack(r *http.Request) string {
	site := formValue(r, "site_id")
	if site == "" {
		return "/sites"
	}
	to := "/sites/" + url.PathEscape(site)
	if dev := formValue(r, "device_id"); dev != "" {
		to += "#dev-" + url.PathEscape(dev)
	}
	return to
}

// revokeHandle (POST /handles/{handle}/revoke) revokes a handle.
func (h *Handler) revokeHandle(w http.ResponseWriter, r *http.Request, c *call) error {
	hd := r.PathValue("handle")
	if err := c.Call("DELETE", "/api/handles/"+url.PathEscape(hd), nil, nil); err != nil {
		return err
	}
	return h.redirect(w, r, handleBack(r), "Handle "+hd+" revoked: its URLs answer 404 and its open tunnels are cut. Opening the port again mints a new one.")
}

// rotateHandle (POST /handles/{handle}/rotate) replaces a handle with a
// new one for the same device port.
func (h *Handler) rotateHandle(w http.ResponseWriter, r *http.Request, c *call) error {
	hd := r.PathValue("handle")
	var nu struct {
		Handle string `json:"handle"`
	}
	if err := c.Call("POST", "/api/handles/"+url.PathEscape(hd)+"/rotate", nil, &nu); err != nil {
		return err
	}
	return h.redirect(w, r, handleBack(r), "Handle "+hd+" rotated: the new handle is "+nu.Handle+"; the old one answers 404 and its open tunnels are cut.")
}
