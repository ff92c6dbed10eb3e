package relay_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nanodems/connector/agent"
	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/testwait"
)

type claimAudit struct {
	TenantID string `json:"tenant_id"`
	Target   string `json:"target"`
	Detail   string `json:"detail"`
}

func auditOf(t *testing.T, d *demo.Demo, action string) []claimAudit {
	t.Helper()
	var out []claimAudit
	if err := d.API.Do(context.Background(), "GET", "/api/audit?action="+action, nil, &out, demo.Admin(d.Info.AdminKey)); err != nil {
		t.Fatal(err)
	}
	return out
}

// apiStatus is the status and reason of a refused API call.
func apiStatus(err error) (int, string) {
	var re *cli.RelayError
	if errors.As(err, &re) {
		return re.Status, re.Reason
	}
	return 0, ""
}

// TestDeviceSerial: a device takes a manufacturer serial on create and
// patch; it is unique among unclaimed serials across the relay, checked
// for its alphabet, and cleared with "".
func TestDeviceSerial(t *testing.T) {
	d := startDemo(t)
	ctx := context.Background()
	admin := demo.Admin(d.Info.AdminKey)
	var dev map[string]any
	if err := d.API.Do(ctx, "POST", "/api/sites/"+d.Info.SiteID+"/devices", map[string]any{"host": "10.1.2.3", "ports": []int{80}, "serial": "DS-2CD2143G2-I/0001"}, &dev, admin); err != nil {
		t.Fatal(err)
	}
	if dev["serial"] != "DS-2CD2143G2-I/0001" {
		t.Fatalf("created device shows serial %v", dev["serial"])
	}
	id := dev["id"].(string)
	// Another site, even of the same tenant: the serial is taken, and
	// nothing is created.
	other := newSite(t, d, "Other")
	err := d.API.Do(ctx, "POST", "/api/sites/"+other+"/devices", map[string]any{"host": "10.1.2.4", "ports": []int{80}, "serial": "DS-2CD2143G2-I/0001"}, nil, admin)
	if st, msg := apiStatus(err); st != 409 || msg != `serial "DS-2CD2143G2-I/0001" is already registered to another unclaimed device` {
		t.Fatalf("duplicate serial: %v", err)
	}
	var list struct{ Items []any }
	d.API.Do(ctx, "GET", "/api/sites/"+other+"/devices", nil, &list, admin)
	if len(list.Items) != 0 {
		t.Fatalf("a refused create left %d devices", len(list.Items))
	}
	for _, bad := range []string{"has space", "<script>", strings.Repeat("x", 129)} {
		err := d.API.Do(ctx, "PATCH", "/api/devices/"+id, map[string]any{"serial": bad}, nil, admin)
		if st, _ := apiStatus(err); st != 400 {
			t.Errorf("serial %q: %v; want 400", bad, err)
		}
	}
	if err := d.API.Do(ctx, "PATCH", "/api/devices/"+id, map[string]any{"serial": "SN-2"}, &dev, admin); err != nil || dev["serial"] != "SN-2" {
		t.Fatalf("patch serial: %v %v", err, dev["serial"])
	}
	// The old serial is free again.
	if err := d.API.Do(ctx, "POST", "/api/sites/"+other+"/devices", map[string]any{"host": "10.1.2.4", "ports": []int{80}, "serial": "DS-2CD2143G2-I/0001"}, nil, admin); err != nil {
		t.Fatal(err)
	}
	var cleared map[string]any
	if err := d.API.Do(ctx, "PATCH", "/api/devices/"+id, map[string]any{"serial": ""}, &cleared, admin); err != nil || cleared["serial"] != nil {
		t.Fatalf("clear serial: %v %v", err, cleared["serial"])
	}
	// A deleted device's serial is free.
	if err := d.API.Do(ctx, "PATCH", "/api/devices/"+id, map[string]any{"serial": "SN-3"}, nil, admin); err != nil {
		t.Fatal(err)
	}
	if err := d.API.Do(ctx, "DELETE", "/api/devices/"+id, nil, nil, admin); err != nil {
		t.Fatal(err)
	}
	if err := d.API.Do(ctx, "POST", "/api/sites/"+other+"/devices", map[string]any{"host": "10.1.2.5", "ports": []int{80}, "serial": "SN-3"}, nil, admin); err != nil {
		t.Fatalf("serial of a deleted device: %v", err)
	}
}

// TestClaim: an embedded agent claims its pre-registered device by serial
// and comes online on the device's site; an unknown serial and a second
// claim of the same serial are refused with a reason and audited; failed
// claims from one address are limited.
func TestClaim(t *testing.T) {
	d := startDemo(t)
	ctx := context.Background()
	admin := demo.Admin(d.Info.AdminKey)
	site := newSite(t, d, "Embedded")
	var dev map[string]any
	if err := d.API.Do(ctx, "POST", "/api/sites/"+site+"/devices", map[string]any{"host": "10.7.0.9", "ports": []int{80, 554}, "serial": "HEOP-42"}, &dev, admin); err != nil {
		t.Fatal(err)
	}
	claim := func(serial string) (*agent.Identity, string, error) {
		dir := t.TempDir()
		id, err := agent.Claim(ctx, agent.ClaimOptions{RelayURL: d.Info.RelayURL, Serial: serial, Pin: d.Info.CAPin, Dir: dir})
		return id, dir, err
	}

	if _, _, err := claim("NOT-REGISTERED"); err == nil || !strings.Contains(err.Error(), `(404): no unclaimed device is registered with serial "NOT-REGISTERED"`) {
		t.Fatalf("unknown serial: %v", err)
	}
	if ev := auditOf(t, d, "agent.claim_refused"); len(ev) != 1 || ev[0].Target != "NOT-REGISTERED" || !strings.Contains(ev[0].Detail, "unknown serial") {
		t.Fatalf("audit of the unknown serial: %+v", ev)
	}

	id, dir, err := claim("HEOP-42")
	if err != nil {
		t.Fatal(err)
	}
	if id.SiteID != site {
		t.Fatalf("claimed into site %s, want the device's site %s", id.SiteID, site)
	}
	a, err := agent.New(agent.Config{Dir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); a.Run(runCtx) }()
	defer func() { stop(); wg.Wait() }()
	testwait.For(t, 30*time.Second, "the claimed agent online on the device's site", func() bool {
		as := siteAgents(t, d, site)
		return len(as) == 1 && as[0].ID == id.AgentID && as[0].Online
	})
	if ev := auditOf(t, d, "agent.claim"); len(ev) != 1 || ev[0].Target != id.AgentID || ev[0].TenantID != d.Info.TenantID {
		t.Fatalf("audit of the claim: %+v", ev)
	}
	if err := d.API.Do(ctx, "GET", "/api/devices/"+dev["id"].(string), nil, &dev, admin); err != nil || dev["claimed_by_agent"] != id.AgentID {
		t.Fatalf("device after the claim: %v %v", err, dev)
	}

	// Twice: refused, audited in the device's tenant, no second agent.
	if _, _, err := claim("HEOP-42"); err == nil || !strings.Contains(err.Error(), `(409): serial "HEOP-42" was already claimed`) {
		t.Fatalf("second claim: %v", err)
	}
	ev := auditOf(t, d, "agent.claim_refused")
	if len(ev) != 2 || ev[0].TenantID != d.Info.TenantID || ev[0].Target != dev["id"] || !strings.Contains(ev[0].Detail, "already claimed by agent "+id.AgentID) {
		t.Fatalf("audit of the second claim: %+v", ev)
	}
	if as := siteAgents(t, d, site); len(as) != 1 {
		t.Fatalf("site has agents %+v after a refused claim", as)
	}
	// A claimed serial does not change.
	err = d.API.Do(ctx, "PATCH", "/api/devices/"+dev["id"].(string), map[string]any{"serial": "OTHER"}, nil, admin)
	if st, msg := apiStatus(err); st != 409 || !strings.Contains(msg, "already claimed by agent "+id.AgentID) {
		t.Fatalf("patch of a claimed serial: %v", err)
	}

	// Failed claims from one address: 10 in a burst (two are spent),
	// then 429 with Retry-After. The failure that locks the address says
	// so in the audit; the 429s write nothing.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csrDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	csr := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}))
	statuses := map[int]int{}
	var retry string
	for i := 0; i < 12; i++ {
		body, _ := json.Marshal(map[string]string{"serial": "GUESS-" + string(rune('A'+i)), "csr": csr})
		resp, err := d.API.Client.Post(d.Info.RelayURL+"/api/claim", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		statuses[resp.StatusCode]++
		if resp.StatusCode == http.StatusTooManyRequests {
			retry = resp.Header.Get("Retry-After")
		}
	}
	if statuses[http.StatusNotFound] != 8 || statuses[http.StatusTooManyRequests] != 4 || retry == "" {
		t.Fatalf("a dozen guesses after two failures: %v (Retry-After %q); want 8 × 404, then 429 with Retry-After", statuses, retry)
	}
	ev = auditOf(t, d, "agent.claim_refused")
	if len(ev) != 10 || !strings.HasSuffix(ev[0].Detail, "; further claims from this address are limited") || strings.Contains(ev[1].Detail, "limited") {
		t.Fatalf("audit after the guesses: %d records, newest %+v", len(ev), ev[0])
	}
}
