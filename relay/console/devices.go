package console

import "time"

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
}

// devicePage is one page of GET /api/sites/{id}/devices.
type devicePage struct {
	Items []Device `json:"items"`
	Next  string   `json:"next"`
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
