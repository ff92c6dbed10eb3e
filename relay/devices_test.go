package relay_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nanodems/connector/agent"
	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/relay"
	"github.com/nanodems/connector/relay/store"
)

type apiDevice struct {
	ID               string            `json:"id"`
	Host             string            `json:"host"`
	Ports            []int             `json:"ports"`
	Label            string            `json:"label"`
	Handles          map[string]string `json:"handles"`
	HasCredentials   bool              `json:"has_credentials"`
	AllowlistVersion int64             `json:"allowlist_version"`
}

type apiSite struct {
	ID               string `json:"id"`
	AllowlistVersion int64  `json:"allowlist_version"`
	AllowLoopback    bool   `json:"allow_loopback"`
}

// siteState is what a refused device write must leave as it was.
type siteState struct {
	version int64
	devices []apiDevice
	audit   int // device.* records
}

func snapshot(t *testing.T, d *demo.Demo, siteID string) siteState {
	t.Helper()
	ctx, admin := context.Background(), demo.Admin(d.Info.AdminKey)
	var st siteState
	var site apiSite
	must(t, d.API.Do(ctx, "GET", "/api/sites/"+siteID, nil, &site, admin))
	st.version = site.AllowlistVersion
	var page struct{ Items []apiDevice }
	must(t, d.API.Do(ctx, "GET", "/api/sites/"+siteID+"/devices", nil, &page, admin))
	st.devices = page.Items
	for _, action := range []string{"device.create", "device.update", "device.credentials"} {
		var evs []auditEvent
		must(t, d.API.Do(ctx, "GET", "/api/audit?limit=1000&action="+action, nil, &evs, admin))
		st.audit += len(evs)
	}
	return st
}

func sameState(t *testing.T, what string, before, after siteState) {
	t.Helper()
	if after.version != before.version {
		t.Errorf("%s: allowlist version %d, was %d", what, after.version, before.version)
	}
	if after.audit != before.audit {
		t.Errorf("%s: %d device audit records, were %d", what, after.audit, before.audit)
	}
	if fmt.Sprint(after.devices) != fmt.Sprint(before.devices) {
		t.Errorf("%s: devices\n%+v\nwere\n%+v", what, after.devices, before.devices)
	}
}

func wantBadRequest(t *testing.T, err error, reason string) {
	t.Helper()
	var re *cli.RelayError
	if !errors.As(err, &re) || re.Status != 400 || !strings.Contains(re.Reason, reason) {
		t.Fatalf("error %v, want 400 %q", err, reason)
	}
}

// A device create or edit that answers 400 stores nothing: no device, no
// handle, no new login, no allowlist bump.
func TestDeviceWriteRefusedStoresNothing(t *testing.T) {
	d := startDemo(t)
	ctx, tok := context.Background(), demo.Bearer(d.Info.Token)
	site := d.Info.SiteID

	t.Run("create with a password but no username", func(t *testing.T) {
		before := snapshot(t, d, site)
		err := d.API.Do(ctx, "POST", "/api/sites/"+site+"/devices", map[string]any{"host": "127.0.0.1", "ports": []int{28002}, "password": "x"}, nil, tok)
		wantBadRequest(t, err, "a password needs a username")
		sameState(t, "after a refused create", before, snapshot(t, d, site))
	})

	t.Run("patch with a password but no username", func(t *testing.T) {
		var dev apiDevice
		must(t, d.API.Do(ctx, "POST", "/api/sites/"+site+"/devices", map[string]any{"host": "127.0.0.1", "ports": []int{28003}, "label": "before"}, &dev, tok))
		before := snapshot(t, d, site)
		err := d.API.Do(ctx, "PATCH", "/api/devices/"+dev.ID, map[string]any{"label": "after", "ports": []int{28003, 28004}, "password": "x"}, nil, tok)
		wantBadRequest(t, err, "a password needs a username")
		sameState(t, "after a refused patch", before, snapshot(t, d, site))
		var got apiDevice
		must(t, d.API.Do(ctx, "GET", "/api/devices/"+dev.ID, nil, &got, tok))
		if got.Label != "before" || !slices.Equal(got.Ports, []int{28003}) || len(got.Handles) != 1 || got.HasCredentials {
			t.Errorf("device after a refused patch: %+v", got)
		}
	})

	t.Run("a good create is audited with its credentials", func(t *testing.T) {
		var dev apiDevice
		must(t, d.API.Do(ctx, "POST", "/api/sites/"+site+"/devices", map[string]any{"host": "127.0.0.1", "ports": []int{28005}, "username": "u", "password": "p"}, &dev, tok))
		if !dev.HasCredentials {
			t.Errorf("device %+v has no credentials", dev)
		}
		wantAudit(t, d, "device.create", dev.ID)
		wantAudit(t, d, "device.credentials", dev.ID)
	})
}

// The relay refuses device hosts that are local targets unless the site
// allows them.
func TestDeviceLocalTargetsNeedSiteSetting(t *testing.T) {
	d := startDemo(t)
	ctx, tok := context.Background(), demo.Bearer(d.Info.Token)
	var site apiSite
	must(t, d.API.Do(ctx, "POST", "/api/tenants/"+d.Info.TenantID+"/sites", map[string]any{"name": "Strict"}, &site, tok))
	must(t, d.API.Do(ctx, "GET", "/api/sites/"+site.ID, nil, &site, tok))
	if site.AllowLoopback {
		t.Fatal("a new site allows local targets by default")
	}
	for _, host := range []string{"127.0.0.1", "127.1.2.3", "localhost", "LOCALHOST.", "cam.localhost", "::1", "::ffff:127.0.0.1",
		"169.254.169.254", "fd00:ec2::254", "169.254.10.10", "fe80::1", "0.0.0.0", "::", "224.0.0.251", "ff02::1"} {
		err := d.API.Do(ctx, "POST", "/api/sites/"+site.ID+"/devices", map[string]any{"host": host, "ports": []int{80}}, nil, tok)
		wantBadRequest(t, err, `set "allow_loopback" on the site`)
	}
	var devs struct{ Items []apiDevice }
	must(t, d.API.Do(ctx, "GET", "/api/sites/"+site.ID+"/devices", nil, &devs, tok))
	if len(devs.Items) != 0 {
		t.Fatalf("refused hosts stored %d devices", len(devs.Items))
	}

	var dev apiDevice
	must(t, d.API.Do(ctx, "POST", "/api/sites/"+site.ID+"/devices", map[string]any{"host": "10.0.0.9", "ports": []int{80}}, &dev, tok))
	before := snapshot(t, d, site.ID)
	err := d.API.Do(ctx, "PATCH", "/api/devices/"+dev.ID, map[string]any{"host": "127.0.0.1", "label": "moved"}, nil, tok)
	wantBadRequest(t, err, `host "127.0.0.1" is a loopback address`)
	sameState(t, "after a refused patch", before, snapshot(t, d, site.ID))

	// The site allows them: the same edit goes through.
	must(t, d.API.Do(ctx, "PATCH", "/api/sites/"+site.ID, map[string]any{"allow_loopback": true}, &site, tok))
	if !site.AllowLoopback {
		t.Fatalf("PATCH answered %+v, want allow_loopback", site)
	}
	wantAudit(t, d, "site.update", site.ID)
	must(t, d.API.Do(ctx, "PATCH", "/api/devices/"+dev.ID, map[string]any{"host": "127.0.0.1"}, &dev, tok))
	if dev.Host != "127.0.0.1" {
		t.Fatalf("device host %q after the patch", dev.Host)
	}
	// And off again: a further edit of the device is refused.
	must(t, d.API.Do(ctx, "PATCH", "/api/sites/"+site.ID, map[string]any{"allow_loopback": false}, &site, tok))
	err = d.API.Do(ctx, "PATCH", "/api/devices/"+dev.ID, map[string]any{"label": "x"}, nil, tok)
	wantBadRequest(t, err, "allow_loopback")
	err = d.API.Do(ctx, "PATCH", "/api/sites/"+site.ID, map[string]any{"name": " "}, nil, tok)
	wantBadRequest(t, err, "name must not be empty")

	// Set at creation.
	var open apiSite
	must(t, d.API.Do(ctx, "POST", "/api/tenants/"+d.Info.TenantID+"/sites", map[string]any{"name": "Lab", "allow_loopback": true}, &open, tok))
	must(t, d.API.Do(ctx, "GET", "/api/sites/"+open.ID, nil, &open, tok))
	if !open.AllowLoopback {
		t.Fatal("site created with allow_loopback does not show it")
	}
	must(t, d.API.Do(ctx, "POST", "/api/sites/"+open.ID+"/devices", map[string]any{"host": "localhost", "ports": []int{80}}, nil, tok))
}

// An agent without --allow-loopback refuses to dial loopback and
// link-local targets, whatever the relay and the site allow, and the
// operator reads why.
func TestAgentRefusesLocalTargetsByDefault(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := demo.Start(ctx, demo.Options{DataDir: t.TempDir(), Logger: quietLogger(),
		Agent: func(c *agent.Config) { c.AllowLoopback = false }})
	must(t, err)
	t.Cleanup(d.Close)
	op := operator(d)
	wantRefusal(t, op, d.Info.EchoHandle, 403, "127.0.0.1: loopback targets are refused by this agent (--allow-loopback)")

	port := d.Echo.Addr().Port
	for host, reason := range map[string]string{
		"localhost":       "localhost resolves to ",
		"169.254.169.254": "169.254.169.254: cloud metadata targets are refused by this agent",
		"0.0.0.0":         "0.0.0.0: unspecified targets are refused by this agent",
	} {
		var dev apiDevice
		must(t, d.API.Do(ctx, "POST", "/api/sites/"+d.Info.SiteID+"/devices", map[string]any{"host": host, "ports": []int{port}}, &dev, demo.Bearer(d.Info.Token)))
		must(t, d.WaitAgent(ctx, 5*time.Second))
		wantRefusal(t, op, dev.Handles[fmt.Sprint(port)], 403, reason)
	}
}

// crashChildEnv makes TestDeviceCreateCrashChild a relay that creates
// devices until it is killed.
const crashChildEnv = "NANODEMS_DEVICE_CRASH_DIR"

// TestDeviceCreateCrashChild is the child of TestDeviceCreateSurvivesKill9:
// a relay on the data directory in $NANODEMS_DEVICE_CRASH_DIR, with
// writers creating devices through the API until the parent kills it.
func TestDeviceCreateCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("the child of TestDeviceCreateSurvivesKill9")
	}
	srv, err := relay.New(relay.Config{DataDir: dir, APIAddr: "127.0.0.1:0", AgentAddr: "127.0.0.1:0", RTSPAddr: "off",
		NodeName: "crash", Logger: slog.New(slog.DiscardHandler)})
	must(t, err)
	must(t, srv.Start())
	key, err := os.ReadFile(filepath.Join(dir, "admin-key"))
	must(t, err)
	admin := demo.Admin(strings.TrimSpace(string(key)))
	api := demo.NewAPI(srv.APIURL(), srv.APIPin())
	ctx := context.Background()
	var ten, site struct {
		ID string `json:"id"`
	}
	must(t, api.Do(ctx, "POST", "/api/admin/tenants", map[string]string{"name": "crash"}, &ten, admin))
	must(t, api.Do(ctx, "POST", "/api/tenants/"+ten.ID+"/sites", map[string]any{"name": "crash"}, &site, admin))
	fmt.Printf("site %s\n", site.ID)
	// Several writers, as several operators would be: each create is one
	// transaction, so at any moment some are in flight.
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				body := map[string]any{"host": fmt.Sprintf("10.%d.%d.%d", w, i>>8&0xff, i&0xff), "ports": []int{80, 554}}
				if i%2 == 0 {
					body["username"], body["password"] = "admin", "pw"
				}
				if err := api.Do(ctx, "POST", "/api/sites/"+site.ID+"/devices", body, nil, admin); err != nil {
					fmt.Printf("error %v\n", err)
					return
				}
				fmt.Println("created")
			}
		}()
	}
	wg.Wait()
}

// A relay killed with SIGKILL while devices are being created leaves no
// device without its device.create audit record, and each site's
// allowlist version counts its devices.
func TestDeviceCreateSurvivesKill9(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("in the child")
	}
	dir := t.TempDir()
	var sites []string
	const kills = 5
	for k := range kills {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDeviceCreateCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		must(t, err)
		must(t, cmd.Start())
		lines := bufio.NewScanner(out)
		created := 0
		// Let it create a varying number of devices, then kill it at a
		// random moment within the next few writes.
		want := 20 + rand.IntN(40)
		for lines.Scan() && created < want {
			l := lines.Text()
			switch {
			case strings.HasPrefix(l, "site "):
				sites = append(sites, strings.TrimPrefix(l, "site "))
			case l == "created":
				created++
			case strings.HasPrefix(l, "error "):
				t.Errorf("child %d: %s", k, l)
			}
		}
		time.Sleep(time.Duration(rand.IntN(5000)) * time.Microsecond) // deliberate: kill the child at a random moment
		cmd.Process.Kill()
		go func() {
			for lines.Scan() {
			}
		}()
		cmd.Wait()
		if created < want {
			t.Fatalf("child %d created %d devices, then stopped", k, created)
		}
	}

	s, err := store.OpenSQLite(filepath.Join(dir, "relay.db"))
	must(t, err)
	defer s.Close()
	ctx := context.Background()
	evs, err := s.ListAudit(ctx, store.AuditFilter{Action: "device.create", Limit: 1 << 20})
	must(t, err)
	audited := map[string]bool{}
	for _, e := range evs {
		audited[e.Target] = true
	}
	creds, err := s.ListAudit(ctx, store.AuditFilter{Action: "device.credentials", Limit: 1 << 20})
	must(t, err)
	credAudited := map[string]bool{}
	for _, e := range creds {
		credAudited[e.Target] = true
	}
	total, missing := 0, 0
	for _, id := range sites {
		site, err := s.GetSite(ctx, id)
		must(t, err)
		devs, err := s.ListDevices(ctx, id)
		must(t, err)
		total += len(devs)
		if site.AllowlistVersion != int64(len(devs)) {
			t.Errorf("site %s: allowlist version %d, %d devices", id, site.AllowlistVersion, len(devs))
		}
		for _, dev := range devs {
			if !audited[dev.ID] {
				missing++
				t.Errorf("device %s has no device.create record", dev.ID)
			}
			if _, err := s.GetDeviceCredentials(ctx, dev.ID); err == nil && !credAudited[dev.ID] {
				t.Errorf("device %s has a login but no device.credentials record", dev.ID)
			}
		}
	}
	if len(evs) != total {
		t.Errorf("%d device.create records for %d devices", len(evs), total)
	}
	t.Logf("%d kills, %d sites, %d devices, %d without a device.create record", kills, len(sites), total, missing)
	if len(sites) != kills {
		t.Fatalf("saw %d sites, want %d", len(sites), kills)
	}
}
