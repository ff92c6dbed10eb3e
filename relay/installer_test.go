package relay_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nanodems/connector/agent"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/installtest"
	"github.com/nanodems/connector/internal/testwait"
	"github.com/nanodems/connector/relay"
)

// installer asks the relay for a site's installer (POST, admin key) and
// returns the script, after checking the answer is an attachment.
func installer(t *testing.T, d *demo.Demo, siteID, osName string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", d.Info.RelayURL+"/api/sites/"+siteID+"/installers/"+osName, nil)
	req.Header.Set("X-Admin-Api-Key", d.Info.AdminKey)
	resp, err := d.API.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("installer %s: %d %s", osName, resp.StatusCode, b)
	}
	ext := map[string]string{"linux": ".sh", "windows": ".cmd"}[osName]
	if cd := resp.Header.Get("Content-Disposition"); cd != `attachment; filename=nanodems-agent-install-`+siteID+ext {
		t.Errorf("Content-Disposition %q", cd)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q: an answer with a token must not be cached", cc)
	}
	if osName == "linux" && !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/x-shellscript") {
		t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
	}
	return string(b)
}

// newSite makes a site of the demo's tenant.
func newSite(t *testing.T, d *demo.Demo, name string) string {
	t.Helper()
	var site struct{ ID string }
	if err := d.API.Do(context.Background(), "POST", "/api/tenants/"+d.Info.TenantID+"/sites", map[string]string{"name": name}, &site, demo.Admin(d.Info.AdminKey)); err != nil {
		t.Fatal(err)
	}
	return site.ID
}

type siteAgent struct {
	ID      string
	Online  bool
	Revoked bool
}

func siteAgents(t *testing.T, d *demo.Demo, siteID string) []siteAgent {
	t.Helper()
	var out []siteAgent
	if err := d.API.Do(context.Background(), "GET", "/api/sites/"+siteID+"/agents", nil, &out, demo.Admin(d.Info.AdminKey)); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestInstallerLinux: the site's .sh installer, run as root in a mount
// namespace without systemd into a temporary root, downloads the agent
// from the relay trusting it by the pin, checks its sum, installs it,
// enrolls it and writes the systemd unit; the installed binary, started,
// comes online on the site. Run again (with a fresh token in it), it
// updates and does not enroll a second agent. A binary altered on the way
// makes it fail with a sentence and install nothing, and so does a relay
// whose key is not the pinned one.
func TestInstallerLinux(t *testing.T) {
	installtest.NeedMountNamespace(t)
	dl := installtest.BuildAgentDownload(t)
	d := startDemo(t, func(c *relay.Config) { c.DownloadsDir = dl })
	siteID := newSite(t, d, "Installer site")

	script := installer(t, d, siteID, "linux")
	for _, line := range []string{"RELAY_URL='" + d.Info.RelayURL + "'", "CA_PIN='" + d.Info.CAPin + "'", "set -eu"} {
		if !strings.Contains(script, line) {
			t.Errorf("installer lacks %q", line)
		}
	}
	if !regexp.MustCompile(`(?m)^ENROLL_TOKEN='et_[A-Za-z0-9_-]{43}'$`).MatchString(script) {
		t.Error("installer holds no enrollment token")
	}
	root := t.TempDir()
	out, err := installtest.Run(t, script, root)
	if err != nil {
		t.Fatalf("installer: %v\n%s", err, out)
	}
	bin := filepath.Join(root, "usr/local/bin/nanodems-agent")
	want, _ := os.ReadFile(filepath.Join(dl, "nanodems-agent-"+runtime.GOOS+"-"+runtime.GOARCH))
	if got, err := os.ReadFile(bin); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("installed binary (%v) is not the relay's download", err)
	}
	if fi, _ := os.Stat(bin); fi.Mode().Perm() != 0o755 {
		t.Errorf("binary mode %v", fi.Mode())
	}
	unit, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/nanodems-agent.service"))
	if err != nil {
		t.Fatalf("no unit file: %v\n%s", err, out)
	}
	for _, line := range []string{`ExecStart="/usr/local/bin/nanodems-agent" run --data-dir "/var/lib/nanodems-agent"`, "Restart=always", "After=network-online.target", "WantedBy=multi-user.target"} {
		if !strings.Contains(string(unit), line) {
			t.Errorf("unit file lacks %q:\n%s", line, unit)
		}
	}
	if !strings.Contains(out, "systemd is not running here") {
		t.Errorf("installer output does not say systemd is absent:\n%s", out)
	}
	state := filepath.Join(root, "var/lib/nanodems-agent")
	var id struct {
		AgentID string `json:"agent_id"`
		SiteID  string `json:"site_id"`
	}
	b, err := os.ReadFile(filepath.Join(state, "agent.json"))
	if err != nil || json.Unmarshal(b, &id) != nil || id.SiteID != siteID {
		t.Fatalf("identity %s (%v): want an agent of site %s", b, err, siteID)
	}
	if fi, _ := os.Stat(state); fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory mode %v", fi.Mode())
	}

	// The installed binary, started as the unit would start it, comes
	// online on the site.
	ctx, cancel := context.WithCancel(context.Background())
	agentCmd := exec.CommandContext(ctx, bin, "run", "--data-dir", state)
	var agentLog bytes.Buffer
	agentCmd.Stdout, agentCmd.Stderr = &agentLog, &agentLog
	started := time.Now()
	if err := agentCmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); agentCmd.Wait() }()
	testwait.For(t, 30*time.Second, "the installed agent online on the site", func() bool {
		as := siteAgents(t, d, siteID)
		return len(as) == 1 && as[0].ID == id.AgentID && as[0].Online
	})
	t.Logf("the installed agent was online %v after its start", time.Since(started).Round(time.Millisecond))

	// A second run, with a fresh installer: an update, not a second agent.
	out, err = installtest.Run(t, installer(t, d, siteID, "linux"), root)
	if err != nil {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	if !strings.Contains(out, "already enrolled") {
		t.Errorf("second run does not say it kept the identity:\n%s", out)
	}
	if as := siteAgents(t, d, siteID); len(as) != 1 || as[0].ID != id.AgentID {
		t.Fatalf("after the second run the site has agents %+v; want only %s", as, id.AgentID)
	}

	t.Run("tampered binary", func(t *testing.T) {
		// A TLS front that passes everything on from the relay but flips
		// one byte of the agent binary; the installer is pointed at it
		// (its URL and pin), as if the download were altered on the way.
		proxy := tamperingProxy(t, d)
		s := retarget(installer(t, d, siteID, "linux"), proxy.URL, curlPinOf(proxy.Certificate().RawSubjectPublicKeyInfo))
		root := t.TempDir()
		out, err := installtest.Run(t, s, root)
		if err == nil {
			t.Fatalf("installer of an altered binary succeeded:\n%s", out)
		}
		if !strings.Contains(out, "does not match its SHA-256 in the relay's SHA256SUMS") || !strings.Contains(out, "nothing was installed") {
			t.Errorf("failure does not say why:\n%s", out)
		}
		assertNothingInstalled(t, root)
	})
	t.Run("wrong pin", func(t *testing.T) {
		// The real relay, but a pin of another key: curl refuses it
		// although -k skips the chain.
		s := retarget(installer(t, d, siteID, "linux"), d.Info.RelayURL, curlPinOf([]byte("another key")))
		root := t.TempDir()
		out, err := installtest.Run(t, s, root)
		if err == nil {
			t.Fatalf("installer trusted a relay whose key is not the pinned one:\n%s", out)
		}
		if !strings.Contains(out, "could not download SHA256SUMS") {
			t.Errorf("failure does not say why:\n%s", out)
		}
		assertNothingInstalled(t, root)
	})
	if as := siteAgents(t, d, siteID); len(as) != 1 {
		t.Fatalf("the failed installs enrolled agents: %+v", as)
	}

	t.Run("reenroll", func(t *testing.T) {
		// Asked to, a run enrolls a new agent in place of the old identity.
		out, err := installtest.Run(t, installer(t, d, siteID, "linux"), root, "--reenroll")
		if err != nil {
			t.Fatalf("--reenroll: %v\n%s", err, out)
		}
		var again struct {
			AgentID string `json:"agent_id"`
		}
		b, err := os.ReadFile(filepath.Join(state, "agent.json"))
		if err != nil || json.Unmarshal(b, &again) != nil || again.AgentID == id.AgentID || again.AgentID == "" {
			t.Fatalf("identity after --reenroll: %s (%v); want a new agent", b, err)
		}
		if as := siteAgents(t, d, siteID); len(as) != 2 {
			t.Fatalf("after --reenroll the site has agents %+v; want 2", as)
		}
	})
	t.Run("claim with the binary", func(t *testing.T) {
		// nanodems-agent claim, the installed program, against a device
		// registered with its serial; then the same serial again.
		if err := d.API.Do(context.Background(), "POST", "/api/sites/"+siteID+"/devices", map[string]any{"host": "10.0.0.64", "ports": []int{80}, "serial": "CAM-0064"}, nil, demo.Admin(d.Info.AdminKey)); err != nil {
			t.Fatal(err)
		}
		claim := func() (string, error) {
			out, err := exec.Command(bin, "claim", "--relay", d.Info.RelayURL, "--serial", "CAM-0064", "--ca-pin", d.Info.CAPin, "--data-dir", t.TempDir()).CombinedOutput()
			return string(out), err
		}
		if out, err := claim(); err != nil || !strings.Contains(out, `claimed device serial CAM-0064 as agent agt_`) {
			t.Fatalf("claim: %v\n%s", err, out)
		}
		if as := siteAgents(t, d, siteID); len(as) != 3 {
			t.Fatalf("after the claim the site has agents %+v", as)
		}
		out, err := claim()
		if err == nil || !strings.Contains(out, `relay refused claim (409): serial "CAM-0064" was already claimed`) {
			t.Fatalf("second claim: %v\n%s", err, out)
		}
	})
}

func assertNothingInstalled(t *testing.T, root string) {
	t.Helper()
	for _, p := range []string{"usr/local/bin/nanodems-agent", "var/lib/nanodems-agent/agent.json", "etc/systemd/system/nanodems-agent.service"} {
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			t.Errorf("%s was installed", p)
		}
	}
}

// curlPinOf is curl's --pinnedpubkey form of a SubjectPublicKeyInfo.
func curlPinOf(spki []byte) string {
	sum := sha256.Sum256(spki)
	return "sha256//" + base64.StdEncoding.EncodeToString(sum[:])
}

var (
	relayURLLine = regexp.MustCompile(`(?m)^RELAY_URL='[^']*'$`)
	curlPinLine  = regexp.MustCompile(`(?m)^CURL_PIN='[^']*'$`)
)

// retarget points a .sh installer at another URL and curl pin.
func retarget(script, relayURL, curlPin string) string {
	if !relayURLLine.MatchString(script) || !curlPinLine.MatchString(script) {
		panic("installer has no RELAY_URL or CURL_PIN line")
	}
	script = relayURLLine.ReplaceAllLiteralString(script, "RELAY_URL='"+relayURL+"'")
	return curlPinLine.ReplaceAllLiteralString(script, "CURL_PIN='"+curlPin+"'")
}

// tamperingProxy forwards to the demo's relay and flips the last byte of
// every agent binary it passes on.
func tamperingProxy(t *testing.T, d *demo.Demo) *httptest.Server {
	target, _ := url.Parse(d.Info.RelayURL)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = d.API.Client.Transport
	rp.ModifyResponse = func(resp *http.Response) error {
		if !strings.HasPrefix(resp.Request.URL.Path, "/downloads/nanodems-agent-") {
			return nil
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if len(b) > 0 {
			b[len(b)-1] ^= 0xff
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		return nil
	}
	srv := httptest.NewUnstartedServer(rp)
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// TestInstallerWindows: the .cmd installer is a batch file (CRLF) made for
// the site: it holds the relay's URL, its pin in both forms, a fresh
// enrollment token that enrolls an agent of that site, the download of the
// Windows agent with the pin, the check against SHA256SUMS, and the
// service registration.
func TestInstallerWindows(t *testing.T) {
	d := startDemo(t)
	siteID := newSite(t, d, "Windows site")
	s := installer(t, d, siteID, "windows")
	if strings.Count(s, "\r\n") != strings.Count(s, "\n") {
		t.Error("not every line ends in CRLF")
	}
	hexPin, _ := strings.CutPrefix(d.Info.CAPin, "sha256:")
	sum, err := hex.DecodeString(hexPin)
	if err != nil || len(sum) != 32 {
		t.Fatalf("demo pin %q", d.Info.CAPin)
	}
	for _, want := range []string{
		"@echo off\r\n",
		`set "RELAY_URL=` + d.Info.RelayURL + `"`,
		`set "CA_PIN=` + d.Info.CAPin + `"`,
		`set "CURL_PIN=sha256//` + base64.StdEncoding.EncodeToString(sum) + `"`,
		`-k --pinnedpubkey %CURL_PIN%`,
		`"%RELAY_URL%/downloads/SHA256SUMS"`,
		`set "FILE=nanodems-agent-windows-amd64.exe"`,
		`Get-FileHash -Algorithm SHA256`,
		`|| goto :badsum`,
		`enroll --relay "%RELAY_URL%" --token "%ENROLL_TOKEN%" --ca-pin "%CA_PIN%" --data-dir "%STATE%"`,
		`if not exist "%STATE%\agent.json" goto :enroll`,
		`service install --binary "%BIN%" --data-dir "%STATE%"`,
		`sc.exe start %SERVICE%`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf(".cmd lacks %q", want)
		}
	}
	m := regexp.MustCompile(`set "ENROLL_TOKEN=(et_[A-Za-z0-9_-]{43})"`).FindStringSubmatch(s)
	if m == nil {
		t.Fatal(".cmd holds no enrollment token")
	}
	// The token is the site's, and fresh at every download.
	if again := installer(t, d, siteID, "windows"); strings.Contains(again, m[1]) {
		t.Error("two downloads hold the same token")
	}
	id, err := agent.Enroll(context.Background(), agent.EnrollOptions{RelayURL: d.Info.RelayURL, Token: m[1], Pin: d.Info.CAPin, Dir: t.TempDir()})
	if err != nil || id.SiteID != siteID {
		t.Fatalf("enroll with the .cmd's token: %v %+v", err, id)
	}
}

// TestInstallerRefusals: an unknown installer and a Host the script could
// not quote are refused with a reason, before any token is minted.
func TestInstallerRefusals(t *testing.T) {
	d := startDemo(t)
	post := func(path, host string) (int, string) {
		req, _ := http.NewRequest("POST", d.Info.RelayURL+path, nil)
		req.Header.Set("X-Admin-Api-Key", d.Info.AdminKey)
		if host != "" {
			req.Host = host
		}
		resp, err := d.API.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := post("/api/sites/"+d.Info.SiteID+"/installers/macos", ""); st != 404 || !strings.Contains(body, `installer \"macos\" (there are linux and windows) not found`) {
		t.Errorf("unknown installer: %d %s", st, body)
	}
	if st, body := post("/api/sites/"+d.Info.SiteID+"/installers/linux", "relay';rm -rf /;'"); st != 400 || !strings.Contains(body, "cannot go into an installer") {
		t.Errorf("unquotable host: %d %s", st, body)
	}
	if st, _ := post("/api/sites/site_nonexistent/installers/linux", ""); st != 404 {
		t.Errorf("unknown site: %d", st)
	}
	var evs []claimAudit
	if err := d.API.Do(context.Background(), "GET", "/api/audit?action=site.installer", nil, &evs, demo.Admin(d.Info.AdminKey)); err != nil || len(evs) != 0 {
		t.Fatalf("refused installers were made: %v %+v", err, evs)
	}
}
