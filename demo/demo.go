// Package demo wires a whole installation on loopback: a relay on embedded
// SQLite, one enrolled agent, and stand-in targets (a camera web page and a
// TCP echo). `nanodems-demo` runs it; end-to-end tests and perf/ use
// it to stand up real relays and agents in-process.
package demo

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nanodems/connector/agent"
	"github.com/nanodems/connector/demo/camera"
	"github.com/nanodems/connector/relay"
	"github.com/nanodems/connector/rtsp/rtsptest"
)

// Options configure a demo. Zero values pick free loopback ports and a
// temporary data directory.
type Options struct {
	DataDir   string
	APIAddr   string // default 127.0.0.1:0
	AgentAddr string // default 127.0.0.1:0
	RTSPAddr  string // RTSP gateway, default 127.0.0.1:0
	PlainHTTP bool
	// RTSPCamera adds a synthetic H.264 camera behind the gateway
	// (Info.RTSPHandle, Info.RTSPURL); `nanodems-demo` turns it on.
	RTSPCamera bool
	// CLISession opens a CLI session for the site (Info.CLIToken,
	// Info.CLICommand); `nanodems-demo` turns it on. Off, tests that count
	// sessions see only their own.
	CLISession bool
	// DownloadsDir, when set, is filled with nanodems-tunnel and
	// nanodems-agent for this machine's platform and served by the relay
	// (/downloads/, /api/downloads), so the installers work in the demo.
	// The binaries are built in the background after the start, and again
	// at every start (the go command relinks only what changed, so a
	// directory kept between starts makes the next one quick); Demo.Downloads
	// tells when they are ready. Without the go command on PATH the demo
	// says so and offers no downloads.
	DownloadsDir string
	Logger       *slog.Logger
	// Relay adjusts the relay's configuration (tests: AppsDomain,
	// CameraTimeout, …) before it starts.
	Relay func(*relay.Config)
	// Agent adjusts the agent's configuration before it runs.
	Agent func(*agent.Config)
}

// The demo user's email (its password is new at every start:
// Info.UserPassword) and the stand-in camera's own login.
const (
	OperatorEmail  = "operator@demo.invalid"
	CameraUser     = "admin"
	CameraPassword = "demo-camera-1"
)

// Info is what an operator needs to use the demo.
type Info struct {
	// ConsoleURL, UserEmail and UserPassword sign an operator in to the
	// console; the password is random, made at this start.
	ConsoleURL     string `json:"console_url"`
	UserEmail      string `json:"user_email"`
	UserPassword   string `json:"user_password"`
	RelayURL       string `json:"relay_url"`
	CAPin          string `json:"ca_pin,omitempty"`
	AdminKey       string `json:"admin_key"`
	TenantID       string `json:"tenant_id"`
	SiteID         string `json:"site_id"`
	UserID         string `json:"user_id"`
	Token          string `json:"token"`
	AgentID        string `json:"agent_id"`
	DeviceID       string `json:"device_id"`
	EchoHandle     string `json:"echo_handle"`
	HTTPHandle     string `json:"http_handle"`
	BrowserURL     string `json:"browser_url"` // the camera's web UI through the relay
	ConnectCommand string `json:"connect_command"`
	CLIToken       string `json:"cli_token,omitempty"`   // with Options.CLISession: an ops_ CLI session for the demo site
	CLICommand     string `json:"cli_command,omitempty"` // nanodems-tunnel run with that session
	RTSPHandle     string `json:"rtsp_handle,omitempty"`
	RTSPURL        string `json:"rtsp_url,omitempty"` // with Options.RTSPCamera: a player URL with its grant
	// DownloadsURL lists the demo's downloads (with Options.DownloadsDir
	// and the go command).
	DownloadsURL string `json:"downloads_url,omitempty"`
}

// Demo is a running installation.
type Demo struct {
	Relay  *relay.Server
	Agent  *agent.Agent
	API    *API
	Echo   *Echo
	Camera *camera.Camera // the stand-in camera web UI behind HTTPHandle
	// RTSPCamera is the synthetic RTSP camera behind RTSPHandle (nil
	// unless Options.RTSPCamera).
	RTSPCamera *rtsptest.Camera
	Info       Info

	camera    *camera.Server
	downloads downloadBuild
	cancel    context.CancelFunc
	agentDone chan struct{} // closed when Agent.Run returns
	agentErr  error         // what it returned
	relayCfg  relay.Config
	agentCfg  agent.Config
	tmp       string
}

// Start brings everything up and returns once the agent is connected and
// holds the allowlist with both targets.
func Start(ctx context.Context, o Options) (_ *Demo, err error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	d := &Demo{agentDone: make(chan struct{})}
	defer func() {
		if err != nil {
			d.Close() // d, not the nil result: tear down what did start
		}
	}()
	if o.DataDir == "" {
		if d.tmp, err = os.MkdirTemp("", "nanodems-demo-"); err != nil {
			return nil, err
		}
		o.DataDir = d.tmp
	}
	o.APIAddr = or(o.APIAddr, "127.0.0.1:0")
	o.AgentAddr = or(o.AgentAddr, "127.0.0.1:0")
	o.RTSPAddr = or(o.RTSPAddr, "127.0.0.1:0")

	d.relayCfg = relay.Config{
		DataDir: filepath.Join(o.DataDir, "relay"), APIAddr: o.APIAddr, AgentAddr: o.AgentAddr, RTSPAddr: o.RTSPAddr,
		PlainHTTP: o.PlainHTTP, NodeName: "demo-relay", Logger: o.Logger,
	}
	if o.DownloadsDir != "" {
		d.relayCfg.DownloadsDir = d.prepareDownloads(o.DownloadsDir, o.Logger)
	}
	if o.Relay != nil {
		o.Relay(&d.relayCfg)
	}
	if d.Relay, err = startRelay(d.relayCfg); err != nil {
		return nil, err
	}
	// A restart must come back on the same addresses.
	d.relayCfg.APIAddr = strings.TrimPrefix(strings.TrimPrefix(d.Relay.APIURL(), "https://"), "http://")
	d.relayCfg.AgentAddr = d.Relay.AgentAddr()
	keyFile := filepath.Join(o.DataDir, "relay", "admin-key")
	key, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("demo needs a fresh data directory (admin key %s): %w", keyFile, err)
	}
	in := &d.Info
	in.RelayURL, in.CAPin, in.AdminKey = d.Relay.APIURL(), d.Relay.APIPin(), strings.TrimSpace(string(key))
	d.API = NewAPI(in.RelayURL, in.CAPin)
	if err := d.provision(ctx); err != nil {
		return nil, err
	}
	d.buildDownloads(o.Logger)

	if d.Echo, err = StartEcho("127.0.0.1:0"); err != nil {
		return nil, err
	}
	d.Camera = camera.New(camera.Options{Username: CameraUser, Password: CameraPassword})
	if d.camera, err = d.Camera.Start("127.0.0.1:0"); err != nil {
		return nil, err
	}
	_, camPort, _ := strings.Cut(d.camera.Addr, ":")
	cp, _ := strconv.Atoi(camPort)
	if err := d.addDevice(ctx, cp, d.Echo.Addr().Port); err != nil {
		return nil, err
	}
	if o.RTSPCamera && d.Relay.RTSPAddr() != "" {
		if err := d.startRTSPCamera(ctx); err != nil {
			return nil, err
		}
	}

	agentDir := filepath.Join(o.DataDir, "agent")
	var site struct {
		EnrollmentToken string `json:"enrollment_token"`
	}
	if err := d.API.Do(ctx, "POST", "/api/sites/"+in.SiteID+"/enrollment-tokens", nil, &site, Admin(in.AdminKey)); err != nil {
		return nil, fmt.Errorf("mint enrollment token: %w", err)
	}
	if _, err := agent.Enroll(ctx, agent.EnrollOptions{RelayURL: in.RelayURL, Token: site.EnrollmentToken, Pin: in.CAPin, Dir: agentDir}); err != nil {
		return nil, err
	}
	// The demo's targets are on 127.0.0.1, beside the relay.
	acfg := agent.Config{Dir: agentDir, Logger: o.Logger, AllowLoopback: true}
	if o.Agent != nil {
		o.Agent(&acfg)
	}
	d.agentCfg = acfg
	if err := d.runAgent(); err != nil {
		return nil, err
	}
	in.AgentID = d.Agent.ID()
	if err := d.WaitAgent(ctx, 10*time.Second); err != nil {
		return nil, err
	}
	in.ConsoleURL = in.RelayURL + "/"
	if d.downloads.dir != "" {
		in.DownloadsURL = in.RelayURL + "/api/downloads"
	}
	in.BrowserURL = in.RelayURL + "/c/" + in.HTTPHandle + "/"
	in.ConnectCommand = fmt.Sprintf("echo hello | go run ./cmd/nanodems-tunnel connect --relay %s --token %s", in.RelayURL, in.Token)
	if in.CAPin != "" {
		in.ConnectCommand += " --ca-pin " + in.CAPin
	}
	in.ConnectCommand += " " + in.EchoHandle
	if o.CLISession {
		if err := d.openCLISession(ctx); err != nil {
			return nil, err
		}
	}
	if in.RTSPHandle != "" {
		if err := d.mintRTSPURL(ctx); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// provision creates a tenant, a user with an API token, and a site.
func (d *Demo) provision(ctx context.Context) error {
	in, admin := &d.Info, Admin(d.Info.AdminKey)
	var t, u, tok, site struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	if err := d.API.Do(ctx, "POST", "/api/admin/tenants", map[string]string{"name": "Demo tenant"}, &t, admin); err != nil {
		return fmt.Errorf("demo: create tenant: %w", err)
	}
	in.UserEmail, in.UserPassword = OperatorEmail, "demo-"+rand.Text()[:16]
	if err := d.API.Do(ctx, "POST", "/api/tenants/"+t.ID+"/users", map[string]string{"email": in.UserEmail, "password": in.UserPassword}, &u, admin); err != nil {
		return fmt.Errorf("demo: create user: %w", err)
	}
	if err := d.API.Do(ctx, "POST", "/api/users/"+u.ID+"/tokens", nil, &tok, admin); err != nil {
		return fmt.Errorf("demo: create token: %w", err)
	}
	// Its devices are on 127.0.0.1: the site must allow local targets.
	if err := d.API.Do(ctx, "POST", "/api/tenants/"+t.ID+"/sites", map[string]any{"name": "Demo site", "allow_loopback": true}, &site, admin); err != nil {
		return fmt.Errorf("demo: create site: %w", err)
	}
	in.TenantID, in.UserID, in.Token, in.SiteID = t.ID, u.ID, tok.Token, site.ID
	return nil
}

// addDevice registers the stand-in camera: its web page and the echo port.
func (d *Demo) addDevice(ctx context.Context, httpPort, echoPort int) error {
	var dev struct {
		ID      string            `json:"id"`
		Handles map[string]string `json:"handles"`
	}
	body := map[string]any{
		"host": "127.0.0.1", "ports": []int{httpPort, echoPort}, "label": "Demo camera", "manufacturer": "nanodems", "model": "stand-in",
		// The relay answers the camera's Digest challenges itself.
		"username": CameraUser, "password": CameraPassword,
	}
	if err := d.API.Do(ctx, "POST", "/api/sites/"+d.Info.SiteID+"/devices", body, &dev, Bearer(d.Info.Token)); err != nil {
		return fmt.Errorf("demo: add device: %w", err)
	}
	d.Info.DeviceID = dev.ID
	d.Info.HTTPHandle = dev.Handles[strconv.Itoa(httpPort)]
	d.Info.EchoHandle = dev.Handles[strconv.Itoa(echoPort)]
	return nil
}

// WaitAgent waits until the agent is connected and holds the site's
// current allowlist.
func (d *Demo) WaitAgent(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var site struct {
			AllowlistVersion int64 `json:"allowlist_version"`
		}
		err := d.API.Do(ctx, "GET", "/api/sites/"+d.Info.SiteID, nil, &site, Admin(d.Info.AdminKey))
		if err == nil && d.Agent.Connected() && d.Agent.Allowlist().Version() >= site.AllowlistVersion {
			return nil
		}
		select {
		case <-d.agentDone:
			return fmt.Errorf("agent stopped: %v", d.agentErr)
		default:
		}
		if time.Now().After(deadline) {
			return errors.New("demo: agent did not connect in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Close stops the agent, the relay and the targets, and removes a
// temporary data directory.
func (d *Demo) Close() {
	d.downloads.stop()
	if d.cancel != nil {
		d.cancel()
		<-d.agentDone
	}
	if d.API != nil {
		d.API.Client.CloseIdleConnections()
	}
	if d.Relay != nil {
		d.Relay.Close()
	}
	if d.Echo != nil {
		d.Echo.Close()
	}
	if d.camera != nil {
		d.camera.Close()
	}
	if d.RTSPCamera != nil {
		d.RTSPCamera.Close()
	}
	if d.tmp != "" {
		os.RemoveAll(d.tmp)
	}
}

// runAgent starts an agent of the demo's configuration (its directory
// is its identity), running until Close or StopAgent.
func (d *Demo) runAgent() error {
	a, err := agent.New(d.agentCfg)
	if err != nil {
		return err
	}
	actx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	d.Agent, d.cancel, d.agentDone = a, cancel, done
	go func() {
		d.agentErr = a.Run(actx)
		close(done)
	}()
	return nil
}

// StopAgent stops the agent; its session with the relay ends, as at an
// agent restart.
func (d *Demo) StopAgent() {
	d.cancel()
	<-d.agentDone
}

// StartAgent starts the agent again after StopAgent, with the same
// identity, and waits until it is connected.
func (d *Demo) StartAgent(ctx context.Context) error {
	if err := d.runAgent(); err != nil {
		return err
	}
	return d.WaitAgent(ctx, 10*time.Second)
}

// AgentExited is closed when the agent's Run returns; AgentErr then says
// why (nil after Close).
func (d *Demo) AgentExited() <-chan struct{} { return d.agentDone }

// AgentErr is what the agent's Run returned, once AgentExited is closed.
func (d *Demo) AgentErr() error { return d.agentErr }

// RestartRelay closes the relay and starts it again on the same data
// directory and addresses, as a deploy would.
func (d *Demo) RestartRelay() error {
	d.Relay.Close()
	var err error
	d.Relay, err = startRelay(d.relayCfg)
	return err
}

func startRelay(cfg relay.Config) (*relay.Server, error) {
	s, err := relay.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.Start(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
