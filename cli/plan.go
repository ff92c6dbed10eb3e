package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Plan is a CLI session's bind plan (GET /api/cli/sessions/plan): every
// device port of the session's sites at the device's loopback address.
type Plan struct {
	SessionID      string      `json:"session_id"`
	ExpiresAt      time.Time   `json:"expires_at"`
	HardCapAt      time.Time   `json:"hard_cap_at"`
	RefreshSeconds int         `json:"refresh_seconds"`
	Entries        []PlanEntry `json:"entries"`
}

// PlanEntry is one device port: the CLI serves it at IP:Port.
type PlanEntry struct {
	IP       string `json:"ip"`
	Port     uint16 `json:"port"`
	Handle   string `json:"handle"`
	Label    string `json:"label"`
	DeviceID string `json:"device_id"`
	SiteID   string `json:"site_id"`
}

// Addr is the entry's local address. DecodePlan has checked that IP parses.
func (e PlanEntry) Addr() netip.AddrPort {
	a, _ := netip.ParseAddr(e.IP)
	return netip.AddrPortFrom(a, e.Port)
}

func (e PlanEntry) String() string { return e.Addr().String() }

// Limits of a plan the CLI accepts. A plan is the relay's word, but the CLI
// binds what it says, so it is checked like any network input: bounded in
// size, addresses only in the range the relay hands out.
const (
	MaxPlanBytes   = 8 << 20
	MaxPlanEntries = 100_000
	maxPlanText    = 200 // runes of a label or id kept for display
)

// ErrBadPlan is wrapped by every plan decoding failure.
var ErrBadPlan = errors.New("bad bind plan")

// DecodePlan reads a plan of at most MaxPlanBytes from r and checks it:
// every address is an IPv4 address of 127.0.0.2–127.255.255.254 (never the
// host's own 127.0.0.1, never outside loopback: a plan must not make the
// CLI listen where the LAN could reach it), every port is 1–65535, no
// (address, port) twice. Text fields lose control characters and are cut
// to 200 runes, so a label cannot drive the operator's terminal.
func DecodePlan(r io.Reader) (Plan, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxPlanBytes+1))
	if err != nil {
		return Plan{}, fmt.Errorf("%w: %v", ErrBadPlan, err)
	}
	if len(b) > MaxPlanBytes {
		return Plan{}, fmt.Errorf("%w: larger than %d bytes", ErrBadPlan, MaxPlanBytes)
	}
	var p Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return Plan{}, fmt.Errorf("%w: %v", ErrBadPlan, err)
	}
	if len(p.Entries) > MaxPlanEntries {
		return Plan{}, fmt.Errorf("%w: %d entries, at most %d", ErrBadPlan, len(p.Entries), MaxPlanEntries)
	}
	p.RefreshSeconds = max(p.RefreshSeconds, 0)
	p.SessionID = cleanText(p.SessionID)
	seen := make(map[netip.AddrPort]bool, len(p.Entries))
	for i := range p.Entries {
		e := &p.Entries[i]
		a, err := netip.ParseAddr(e.IP)
		if err != nil || !planAddr(a) {
			return Plan{}, fmt.Errorf("%w: entry %d: %q is not a loopback address of 127.0.0.2-127.255.255.254", ErrBadPlan, i, e.IP)
		}
		if e.Port == 0 {
			return Plan{}, fmt.Errorf("%w: entry %d: port 0", ErrBadPlan, i)
		}
		e.IP = a.String()
		ap := netip.AddrPortFrom(a, e.Port)
		if seen[ap] {
			return Plan{}, fmt.Errorf("%w: %s listed twice", ErrBadPlan, ap)
		}
		seen[ap] = true
		e.Handle, e.Label, e.DeviceID, e.SiteID = cleanText(e.Handle), cleanText(e.Label), cleanText(e.DeviceID), cleanText(e.SiteID)
	}
	return p, nil
}

// planAddr reports whether a is an address the relay hands out to devices.
func planAddr(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	b := a.As4()
	n := int(b[1])<<16 | int(b[2])<<8 | int(b[3])
	return b[0] == 127 && n >= 2 && n <= 1<<24-2
}

// cleanText makes relay-supplied text safe to print: valid UTF-8, no
// control characters, at most maxPlanText runes.
func cleanText(s string) string {
	if len(s) <= maxPlanText && utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	n := 0
	for _, r := range strings.ToValidUTF8(s, "?") {
		if n == maxPlanText {
			b.WriteString("…")
			break
		}
		if unicode.IsControl(r) {
			r = '?'
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// FetchPlan asks the relay for the plan of the CLI session r.Token.
func FetchPlan(ctx context.Context, r Relay) (Plan, error) {
	c := r.HTTPClient()
	defer c.CloseIdleConnections()
	return fetchPlan(ctx, c, r)
}

func fetchPlan(ctx context.Context, c *http.Client, r Relay) (Plan, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(r.URL, "/")+"/api/cli/sessions/plan", nil)
	if err != nil {
		return Plan{}, fmt.Errorf("relay URL: %w", err)
	}
	if r.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.Token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return Plan{}, fmt.Errorf("fetch plan: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Plan{}, relayError(resp)
	}
	p, err := DecodePlan(resp.Body)
	if err != nil {
		return Plan{}, fmt.Errorf("fetch plan: %w", err)
	}
	return p, nil
}

// planIndex finds plan entries by address.
type planIndex map[netip.AddrPort]PlanEntry

func indexPlan(p Plan) planIndex {
	x := make(planIndex, len(p.Entries))
	for _, e := range p.Entries {
		x[e.Addr()] = e
	}
	return x
}

// entryName is how logs and the table name an entry's device.
func entryName(e PlanEntry) string {
	if e.Label != "" {
		return e.Label
	}
	return e.DeviceID
}

// portString is strconv for a port.
func portString(p uint16) string { return strconv.Itoa(int(p)) }
