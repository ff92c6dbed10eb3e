// Package store holds the relay's durable state: tenants, sites, agents,
// devices, handles, users, API tokens and the audit log.
//
// One Store interface serves every backend. The default is embedded SQLite
// (pure Go, no cgo) in the relay's data directory, so one command starts a
// working relay; relays that run as one share a PostgreSQL database
// (Postgres), with the same queries and the same migrations. The per-byte path never touches the store: the relay caches
// handle routes in memory and invalidates them on change.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors returned by every Store implementation. Callers test with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
	ErrExpired  = errors.New("expired")
	ErrUsed     = errors.New("already used")
	ErrRevoked  = errors.New("revoked")
)

// Tenant is one customer organisation.
type Tenant struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// Site is one physical location with a shared LAN. AllowlistVersion is
// bumped by every device change in the site; agents refuse older pushes.
type Site struct {
	ID               string
	TenantID         string
	Name             string
	AllowlistVersion int64
	// AllowLoopback lets the site's devices name local targets (loopback,
	// link-local, unspecified or multicast addresses, localhost), which
	// the relay refuses otherwise.
	AllowLoopback bool
	CreatedAt     time.Time
}

// EnrollmentToken is a one-shot, expiring secret that lets one agent enroll
// into a site. Only the SHA-256 of the token is stored.
type EnrollmentToken struct {
	Hash      []byte
	SiteID    string
	ExpiresAt time.Time
	UsedAt    *time.Time
	CreatedAt time.Time
}

// Agent is an enrolled bridge process. ID is its certificate's CN.
type Agent struct {
	ID         string
	SiteID     string
	CertSerial string // hex of the certificate serial number
	RevokedAt  *time.Time
	CreatedAt  time.Time
}

// Device is one addressable target on a site's LAN. LoopbackIP is unique
// across the relay and handed out from 127.0.0.2 upward; it is assigned by
// CreateDevice.
type Device struct {
	ID           string
	SiteID       string
	Host         string
	Ports        []int
	Label        string
	Manufacturer string
	Model        string
	Notes        string
	LoopbackIP   string
	CreatedAt    time.Time
}

// DeviceOp is what a DeviceChange does to its device.
type DeviceOp int

const (
	// DeviceCreate inserts Device, assigning its LoopbackIP.
	DeviceCreate DeviceOp = iota + 1
	// DeviceUpdate replaces the mutable fields of Device (host, ports,
	// label, manufacturer, model, notes) and revokes the live handles of
	// the ports it no longer has. Its site, loopback address and creation
	// time are kept; Device.SiteID is ignored.
	DeviceUpdate
	// DeviceDelete marks the device with Device.ID deleted, revokes its
	// live handles and clears its stored login. The row stays so its
	// handles keep resolving, as revoked.
	DeviceDelete
)

// DeviceChange is one device write and everything that must land with it:
// a device without its audit record, or an audit record of a write that
// did not happen, is what a crash between two transactions would leave.
type DeviceChange struct {
	Op     DeviceOp
	Device Device
	// Handles are inserted after the revocations of DeviceUpdate, so they
	// are never revoked by it. DeviceID and TenantID may be left empty;
	// they are filled from the device and its site.
	Handles []Handle
	// SetCredentials stores Sealed as the device's login; nil Sealed
	// clears it. DeviceDelete always clears it.
	SetCredentials bool
	Sealed         []byte
	// Serial, when not nil, sets the device's manufacturer serial ("":
	// none); a serial another unclaimed device holds, or a change of a
	// claimed one, is a *SerialError. DeviceDelete always removes it.
	Serial *string
	// Audit is appended in order. An event without At gets Now; one
	// without TenantID gets the site's tenant.
	Audit []AuditEvent
	Now   time.Time
}

// Handle is the opaque routing token for one (device, port).
type Handle struct {
	Handle    string
	TenantID  string
	DeviceID  string
	Port      int
	AgentID   string // pinned agent; empty until the first tunnel
	ExpiresAt *time.Time
	RevokedAt *time.Time
	CreatedAt time.Time
}

// Route is what a handle resolves to: everything the relay needs to open a
// tunnel. It joins the handle with its device and site.
type Route struct {
	Handle    string
	TenantID  string
	SiteID    string
	DeviceID  string
	Host      string
	Port      int
	AgentID   string
	ExpiresAt *time.Time
	RevokedAt *time.Time
}

// User is an operator account, pinned to one tenant unless Superadmin.
type User struct {
	ID           string
	TenantID     string
	Email        string
	PasswordHash string // PHC-format argon2id string
	Superadmin   bool
	CreatedAt    time.Time
}

// APIToken is a per-user bearer (nt_…). Only its SHA-256 is stored. It is
// bound to the tenant that was active when it was minted.
type APIToken struct {
	ID        string
	UserID    string
	TenantID  string
	Hash      []byte
	Label     string // the owner's name for it, e.g. "CI pipeline"
	CreatedAt time.Time
	RevokedAt *time.Time
	// LastUsedAt is when the relay last looked the token up for a call
	// (TouchAPIToken); nil if never.
	LastUsedAt *time.Time
}

// AuditEvent is one append-only audit record.
type AuditEvent struct {
	ID       int64
	At       time.Time
	TenantID string // empty for relay-wide events
	Actor    string // "admin", "user:<id>", "agent:<id>", "relay"
	Action   string // e.g. "agent.revoke", "agent.reject_unregistered_cn"
	Target   string
	Detail   string
}

// AuditFilter selects audit events, newest first.
type AuditFilter struct {
	TenantID string // empty: all tenants
	Action   string // empty: all actions
	Limit    int    // <= 0: 100
	// Since and Until bound At (Since <= At < Until); zero: unbounded.
	Since, Until time.Time
	// Before pages back: only events with an ID below it (0: from the
	// newest). The next page is Before = the last ID of this one.
	Before int64
}

// Session is a signed-in browser session. Only the SHA-256 of its cookie
// is stored. TenantID is the tenant it acts in; superadmins switch it.
type Session struct {
	Hash      []byte
	UserID    string
	TenantID  string
	CSRF      string // the antiforgery token its forms must carry
	CreatedAt time.Time
	ExpiresAt time.Time
}

// CameraCert is the certificate an HTTPS camera showed behind a handle.
type CameraCert struct {
	Handle      string
	Subject     string
	Fingerprint string // "sha256:<hex>" of the leaf certificate
	FirstSeen   time.Time
	LastSeen    time.Time
}

// Store is the relay's persistence. Implementations are safe for
// concurrent use.
type Store interface {
	Close() error

	// Settings are relay-wide key/value pairs (e.g. the admin key hash).
	GetSetting(ctx context.Context, key string) (string, error)
	SetSetting(ctx context.Context, key, value string) error

	CreateTenant(ctx context.Context, t Tenant) error
	GetTenant(ctx context.Context, id string) (Tenant, error)

	CreateUser(ctx context.Context, u User) error // ErrConflict on duplicate email
	GetUser(ctx context.Context, id string) (User, error)
	GetUserByEmail(ctx context.Context, email string) (User, error)

	CreateAPIToken(ctx context.Context, t APIToken) error
	GetAPITokenByHash(ctx context.Context, hash []byte) (APIToken, error)
	GetAPIToken(ctx context.Context, id string) (APIToken, error)
	RevokeAPIToken(ctx context.Context, id string, at time.Time) error
	// TouchAPIToken records a use of the token (its LastUsedAt).
	TouchAPIToken(ctx context.Context, id string, at time.Time) error

	CreateSite(ctx context.Context, s Site) error
	GetSite(ctx context.Context, id string) (Site, error)
	// UpdateSite replaces the site's name and AllowLoopback.
	UpdateSite(ctx context.Context, s Site) error

	CreateEnrollmentToken(ctx context.Context, t EnrollmentToken) error
	// UseEnrollmentToken atomically marks the token used and returns it.
	// ErrNotFound, ErrExpired (now >= ExpiresAt) or ErrUsed otherwise.
	UseEnrollmentToken(ctx context.Context, hash []byte, now time.Time) (EnrollmentToken, error)

	CreateAgent(ctx context.Context, a Agent) error
	GetAgent(ctx context.Context, id string) (Agent, error)
	ListAgents(ctx context.Context, siteID string) ([]Agent, error)
	RevokeAgent(ctx context.Context, id string, at time.Time) error

	// ApplyDeviceChange creates, edits or deletes a device together with
	// its handles, its stored login, its audit records and the bump of its
	// site's allowlist version, all in one transaction: either all of it
	// is stored or none. It returns the device as stored (create: with its
	// LoopbackIP) and the site's new allowlist version.
	ApplyDeviceChange(ctx context.Context, c DeviceChange) (Device, int64, error)
	// CreateDevices stores many DeviceCreate changes of one site in one
	// transaction, all or none, with one bump of the site's allowlist
	// version for the whole batch (devices_bulk.go).
	CreateDevices(ctx context.Context, siteID string, cs []DeviceChange) ([]Device, int64, error)
	GetDevice(ctx context.Context, id string) (Device, error)
	// GetDeviceSerial and ClaimDeviceSerial: the serials of devices that
	// run an agent themselves (serials.go).
	GetDeviceSerial(ctx context.Context, deviceID string) (DeviceSerial, error)
	ClaimDeviceSerial(ctx context.Context, serial string, a Agent) (DeviceSerial, error)
	ListDevices(ctx context.Context, siteID string) ([]Device, error)

	// InsertHandle stores one handle (legacy imports, re-mints).
	InsertHandle(ctx context.Context, h Handle) error
	// ListHandles returns the device's handles that are not revoked.
	ListHandles(ctx context.Context, deviceID string) ([]Handle, error)
	// ResolveHandle returns the route of a handle whether or not it is
	// revoked or expired; the caller decides. ErrNotFound if unknown.
	ResolveHandle(ctx context.Context, handle string) (Route, error)
	PinHandle(ctx context.Context, handle, agentID string) (pinned string, err error)
	RevokeHandle(ctx context.Context, handle string, at time.Time) error

	CreateSession(ctx context.Context, s Session) error
	GetSession(ctx context.Context, hash []byte) (Session, error)
	SetSessionTenant(ctx context.Context, hash []byte, tenantID string) error
	DeleteSession(ctx context.Context, hash []byte) error

	// SetDeviceCredentials stores a device's sealed login; nil clears it.
	SetDeviceCredentials(ctx context.Context, deviceID string, sealed []byte, now time.Time) error
	GetDeviceCredentials(ctx context.Context, deviceID string) ([]byte, error)

	GetCameraCert(ctx context.Context, handle string) (CameraCert, error)
	PutCameraCert(ctx context.Context, c CameraCert) error

	AppendAudit(ctx context.Context, e AuditEvent) error
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error)

	// CLI sessions (ops_…, relay/store/cli.go). Get* return a session
	// whether or not it is revoked or expired; the caller decides.
	CreateCLISession(ctx context.Context, c CLISession) error
	GetCLISession(ctx context.Context, id string) (CLISession, error)
	GetCLISessionByHash(ctx context.Context, hash []byte) (CLISession, error)
	// ListCLISessions returns the live sessions that include siteID.
	ListCLISessions(ctx context.Context, siteID string, now time.Time) ([]CLISession, error)
	// TouchCLISession checks that the session is live at now (ErrRevoked,
	// ErrExpired, ErrNotFound) and slides its expiry to expires, capped at
	// its hard cap, in one transaction.
	TouchCLISession(ctx context.Context, id string, now, expires time.Time) (CLISession, error)
	RevokeCLISession(ctx context.Context, id string, at time.Time) error
	// ResolveLoopback maps a CLI's (loopback ip, port) to the route of the
	// live handle of that device port; ErrNotFound if none.
	ResolveLoopback(ctx context.Context, ip string, port int, now time.Time) (Route, error)

	// Lists for the API and the console (relay/store/lists.go). Paged
	// ones return the cursor of the next page, "" after the last;
	// ErrBadCursor for a cursor they did not hand out.
	ListTenants(ctx context.Context) ([]Tenant, error)
	ListSites(ctx context.Context, tenantID string, p Page) ([]Site, string, error)
	ListUsers(ctx context.Context, tenantID string, p Page) ([]User, string, error)
	ListUserAPITokens(ctx context.Context, userID string, p Page) ([]APIToken, string, error)
	// ListTenantAgents pages the agents of every site of the tenant.
	ListTenantAgents(ctx context.Context, tenantID string, p Page) ([]Agent, string, error)
	ListDevicesPage(ctx context.Context, siteID string, p Page) ([]Device, string, error)
	ListSiteHandles(ctx context.Context, siteID string, p Page) ([]Handle, string, error)
	// CountDevices is the number of devices of each site (absent: 0).
	CountDevices(ctx context.Context, siteIDs []string) (map[string]int, error)

	// Changes made through other stores on the same database
	// (relay/store/changes.go): the writes that revoke or change what
	// relays cache send one in their transaction; Notify sends one no
	// write made. Changes delivers them until ctx ends.
	Notify(ctx context.Context, c Change) error
	Changes(ctx context.Context) <-chan Change

	// Presence leases (relay/store/presence.go): which relay holds which
	// agent. Readers get only leases live at now.
	PutLease(ctx context.Context, l Lease) error
	DeleteLease(ctx context.Context, agentID, relayNode string) error
	LookupLease(ctx context.Context, agentID string, now time.Time) (Lease, error)
	ListSiteLeases(ctx context.Context, siteID string, now time.Time) ([]Lease, error)
	ListTenantLeases(ctx context.Context, tenantID string, now time.Time) ([]Lease, error)
	ReapLeases(ctx context.Context, now time.Time) (int, error)

	// TTL locks (relay/store/locks.go) for jobs that run on one relay.
	TryLock(ctx context.Context, name, holder string, ttl time.Duration, now time.Time) (bool, error)
	RenewLock(ctx context.Context, name, holder string, ttl time.Duration, now time.Time) (bool, error)
	ReleaseLock(ctx context.Context, name, holder string) error
}
