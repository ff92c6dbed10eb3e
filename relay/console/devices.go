package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Device is a device as the API shows it.
type Device struct {
	ID             string            `json:"id"`
	SiteID         string            `json:"site_id"`
	Host           string            `json:"host"`
	Ports          []int             `json:"ports"`
	Label          string            `json:"label"`
	Manufacturer   string            `json:"manufacturer"`
	Model          string            `json:"model"`
	Notes          string            `json:"notes"`
	HasCredentials bool              `json:"has_credentials"`
	LoopbackIP     string            `json:"loopback_ip"`
	Handles        map[string]string `json:"handles"` // port → handle
	CreatedAt      time.Time         `json:"created_at"`
	// Today is the device's bytes since UTC midnight, both ways, over all
	// its ports (the site page fills it from the site's stats).
	Today string `json:"-"`
}

// devicePage is one page of GET /api/sites/{id}/devices.
type devicePage struct {
	Items []Device `json:"items"`
	Next  string   `json:"next"`
}

// Name is what the console calls the device: its label, else its host.
func (d Device) Name() string {
	if d.Label != "" {
		return d.Label
	}
	return d.Host
}

// Pill is one port of a device row: how the console opens it.
type Pill struct {
	Port   int
	Kind   string // "http", "https", "rtsp" or "tcp"
	Handle string // the port's live handle, "" if it has none
	CLI    string // 127.0.0.X:port, the CLI tunnel's address
}

// Pills are the device's ports as the row shows them.
func (d Device) Pills() []Pill {
	out := make([]Pill, len(d.Ports))
	for i, p := range d.Ports {
		out[i] = Pill{Port: p, Kind: portKind(p), Handle: d.Handles[strconv.Itoa(p)], CLI: d.LoopbackIP + ":" + strconv.Itoa(p)}
	}
	return out
}

// portKind tells a port's protocol by its number, as cameras assign them:
// the browser proxy opens the web ones, the RTSP gateway the stream ones;
// anything else (vendor SDKs, ONVIF events) is reached through the CLI.
func portKind(p int) string {
	switch p {
	case 80, 81, 88, 8080, 8081, 8088, 8888:
		return "http"
	case 443, 8443:
		return "https"
	case 554, 8554, 10554:
		return "rtsp"
	}
	return "tcp"
}

// deviceForm is the add-device form, kept with its error to show again.
type deviceForm struct {
	Label, Host, Ports, Manufacturer, Model, Username string
	Field, Error                                      string
}

// portsForm is the ✏ popup of one device: its ports as a comma list.
type portsForm struct {
	Device Device
	Ports  string
	Error  string
}

// parsePorts reads a comma list of ports ("80, 443,554"). The API checks
// range and duplicates; this only turns text into numbers.
func parsePorts(s string) ([]int, error) {
	var out []int
	for f := range strings.FieldsFuncSeq(s, func(r rune) bool { return r == ',' || r == ' ' || r == ';' }) {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("ports: %q is not a port number", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("ports: list at least one port, e.g. 80, 554")
	}
	return out, nil
}

// fieldOf names the form field an API refusal of a device is about.
func fieldOf(reason string) string {
	switch {
	case strings.HasPrefix(reason, "host"):
		return "host"
	case strings.Contains(reason, "port"):
		return "ports"
	case strings.Contains(reason, "password"), strings.Contains(reason, "username"):
		return "username"
	}
	return ""
}

// badRequest is the API's 400, whose reason goes back to the form.
func badRequest(err error) (string, bool) {
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusBadRequest {
		return fieldReason(ae.Reason), true
	}
	return "", false
}

// addDevice (POST /sites/{siteId}/devices) adds a device; its login is
// write-only: stored sealed by the relay, never shown again.
func (h *Handler) addDevice(w http.ResponseWriter, r *http.Request, c *call) error {
	siteID := r.PathValue("siteId")
	f := deviceForm{Label: formValue(r, "label"), Host: formValue(r, "host"), Ports: formValue(r, "ports"),
		Manufacturer: formValue(r, "manufacturer"), Model: formValue(r, "model"), Username: formValue(r, "username")}
	refuse := func(field, reason string) error {
		f.Field, f.Error = field, reason
		return h.showSiteStatus(w, r, c, http.StatusBadRequest, siteID, siteExtras{Add: &f})
	}
	if f.Host == "" {
		return refuse("host", "host: enter the device's LAN address (IP or host name)")
	}
	ports, err := parsePorts(f.Ports)
	if err != nil {
		return refuse("ports", err.Error())
	}
	body := map[string]any{"host": f.Host, "ports": ports, "label": f.Label, "manufacturer": f.Manufacturer, "model": f.Model}
	pw := r.PostForm.Get("password")
	if pw != "" && f.Username == "" {
		// The API reads an empty username as "no login": say so rather
		// than drop the password.
		return refuse("username", "username: a password needs a username")
	}
	if f.Username != "" {
		body["username"], body["password"] = f.Username, pw
	}
	var d struct {
		Device
		AllowlistVersion int64 `json:"allowlist_version"`
	}
	err = c.Call("POST", "/api/sites/"+url.PathEscape(siteID)+"/devices", body, &d)
	if reason, ok := badRequest(err); ok {
		return refuse(fieldOf(reason), reason)
	}
	if err != nil {
		return err
	}
	return h.redirect(w, r, "/sites/"+url.PathEscape(siteID)+"#dev-"+d.ID,
		fmt.Sprintf("Device %s added; allowlist v%d pushed to the site's agents.", d.Name(), d.AllowlistVersion))
}

// device loads the device of the request's {deviceId}.
func (c *call) device(r *http.Request) (Device, error) {
	var d Device
	err := c.Call("GET", "/api/devices/"+url.PathEscape(r.PathValue("deviceId")), nil, &d)
	return d, err
}

// editPorts (POST /devices/{deviceId}/ports) saves the ✏ popup: the API
// bumps the allowlist, pushes it to the site's agents and mints handles
// for the new ports. A bad list reopens the popup with the reason.
func (h *Handler) editPorts(w http.ResponseWriter, r *http.Request, c *call) error {
	d, err := c.device(r)
	if err != nil {
		return err
	}
	f := portsForm{Device: d, Ports: formValue(r, "ports")}
	refuse := func(reason string) error {
		f.Error = reason
		return h.showSiteStatus(w, r, c, http.StatusBadRequest, d.SiteID, siteExtras{Edit: &f})
	}
	ports, err := parsePorts(f.Ports)
	if err != nil {
		return refuse(err.Error())
	}
	var out struct {
		AllowlistVersion int64 `json:"allowlist_version"`
	}
	err = c.Call("PATCH", "/api/devices/"+url.PathEscape(d.ID), map[string]any{"ports": ports}, &out)
	if reason, ok := badRequest(err); ok {
		return refuse(reason)
	}
	if err != nil {
		return err
	}
	var added []string
	for _, p := range ports {
		if !slices.Contains(d.Ports, p) {
			added = append(added, strconv.Itoa(p))
		}
	}
	msg := fmt.Sprintf("Ports of %s saved; allowlist v%d pushed to the site's agents.", d.Name(), out.AllowlistVersion)
	if len(added) > 0 {
		msg += " New handles for port " + strings.Join(added, ", ") + "."
	}
	return h.redirect(w, r, "/sites/"+url.PathEscape(d.SiteID)+"#dev-"+d.ID, msg)
}

// deleteDevice (POST /devices/{deviceId}/delete) removes a device after
// the confirmation: its handles stop working at once.
func (h *Handler) deleteDevice(w http.ResponseWriter, r *http.Request, c *call) error {
	d, err := c.device(r)
	if err != nil {
		return err
	}
	var out struct {
		AllowlistVersion int64 `json:"allowlist_version"`
	}
	if err := c.Call("DELETE", "/api/devices/"+url.PathEscape(d.ID), nil, &out); err != nil {
		return err
	}
	return h.redirect(w, r, "/sites/"+url.PathEscape(d.SiteID),
		fmt.Sprintf("Device %s deleted; its handles are revoked and allowlist v%d pushed.", d.Name(), out.AllowlistVersion))
}

// handleFor is the live handle of the request's device {port}, minted if
// the port has none.
func (c *call) handleFor(r *http.Request) (string, error) {
	var out struct {
		Handle string `json:"handle"`
	}
	err := c.Call("POST", "/api/devices/"+url.PathEscape(r.PathValue("deviceId"))+"/ports/"+url.PathEscape(r.PathValue("port"))+"/handle", nil, &out)
	return out.Handle, err
}

// openPort (POST /devices/{deviceId}/open/{port}) is an HTTP(S) pill of a
// port without a handle: it mints one and sends the (new) tab to the
// browser proxy.
func (h *Handler) openPort(w http.ResponseWriter, r *http.Request, c *call) error {
	hd, err := c.handleFor(r)
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/c/"+url.PathEscape(hd)+"/", http.StatusSeeOther)
	return nil
}

// rtspURL (POST /devices/{deviceId}/rtsp/{port}) is an RTSP pill: a
// signed rtsp://…:9554/{handle}/ URL a player opens without a login. The
// console's script asks for JSON and copies it; without the script the
// site page shows it.
func (h *Handler) rtspURL(w http.ResponseWriter, r *http.Request, c *call) error {
	hd, err := c.handleFor(r)
	if err != nil {
		return err
	}
	var out struct {
		URL       string `json:"url"`
		ExpiresAt string `json:"expires_at"`
	}
	if err := c.Call("POST", "/api/handles/"+url.PathEscape(hd)+"/rtsp-url", nil, &out); err != nil {
		return err
	}
	if wantsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, "{\"url\":%q,\"expires_at\":%q}\n", out.URL, out.ExpiresAt)
		return nil
	}
	d, err := c.device(r)
	if err != nil {
		return err
	}
	return h.showSite(w, r, c, d.SiteID, siteExtras{RTSPURL: out.URL, Flash: "RTSP URL of " + d.Name() + " below: paste it into VLC, your NVR or VMS."})
}
