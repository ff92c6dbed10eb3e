package relay_test

import (
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/wsconn"
	"github.com/nanodems/connector/relay/secret"
)

// issuedLicense is the answer that issues a license: the only one with
// its GUID.
type issuedLicense struct {
	ID       string `json:"id"`
	GUID     string `json:"guid"`
	Hint     string `json:"hint"`
	TenantID string `json:"tenant_id"`
}

// issueLicense rotates in a new license for tenant with the admin key.
func issueLicense(t *testing.T, d *demo.Demo, tenant string) issuedLicense {
	t.Helper()
	var l issuedLicense
	must(t, d.API.Do(context.Background(), "POST", "/api/admin/tenants/"+tenant+"/licenses", nil, &l, demo.Admin(d.Info.AdminKey)))
	return l
}

// licenseTunnel opens /api/tunnel/{handle} with the given subprotocols
// and headers and returns the tunnel and the subprotocol the relay
// echoed; a refusal fails the test with its status and body.
func licenseTunnel(t *testing.T, d *demo.Demo, handle string, protos []string, hdr http.Header) (net.Conn, string) {
	t.Helper()
	ws, resp, err := websocket.Dial(context.Background(), wsURL(d, "/api/tunnel/"+handle),
		&websocket.DialOptions{HTTPClient: d.API.Client, Subprotocols: protos, HTTPHeader: hdr})
	if err != nil {
		status, body := refusal(resp)
		t.Fatalf("license tunnel (%q, %v): %v: %d %s", protos, hdr, err, status, body)
	}
	t.Cleanup(func() { ws.CloseNow() })
	return wsconn.New(ws, wsconn.Addr("l"), wsconn.Addr("r")), ws.Subprotocol()
}

// licenseRefused opens the tunnel expecting a refusal before the upgrade,
// and returns its status and body.
func licenseRefused(t *testing.T, d *demo.Demo, handle string, protos []string, hdr http.Header) (int, string) {
	t.Helper()
	ws, resp, err := websocket.Dial(context.Background(), wsURL(d, "/api/tunnel/"+handle),
		&websocket.DialOptions{HTTPClient: d.API.Client, Subprotocols: protos, HTTPHeader: hdr})
	if err == nil {
		ws.CloseNow()
		t.Fatalf("tunnel with %q %v opened, want a refusal", protos, hdr)
	}
	return refusal(resp)
}

func refusal(resp *http.Response) (int, string) {
	if resp == nil {
		return 0, ""
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// An OpCon license opens the tunnels of its tenant in each of its three
// forms: one subprotocol, two subprotocols (each echoed as RFC 6455
// requires) and the X-License header, also from a page of another
// origin; each tunnel is audited with the console's user id. A malformed
// or unknown license, or one on another route, is 401 with the reason.
// Revoking the license cuts every tunnel it opened, audited with the
// count, and refuses it from then on; the tenant's people see its hint,
// never its GUID.
func TestLicenseOpensAndRevokeCutsTunnels(t *testing.T) {
	d := startDemo(t)
	ctx := context.Background()
	l := issueLicense(t, d, d.Info.TenantID)
	if l.GUID == "" || !strings.HasSuffix(l.GUID, l.Hint) || l.TenantID != d.Info.TenantID {
		t.Fatalf("issued license %+v", l)
	}

	one := "license." + l.GUID + ".user.op-17"
	c1, sub1 := licenseTunnel(t, d, d.Info.EchoHandle, []string{one}, http.Header{"Origin": {"https://opcon.example"}})
	if sub1 != one {
		t.Errorf("one-subprotocol form echoed %q, want %q", sub1, one)
	}
	c2, sub2 := licenseTunnel(t, d, d.Info.EchoHandle, []string{"license." + l.GUID, "user.op-18"}, nil)
	if sub2 != "license."+l.GUID {
		t.Errorf("two-subprotocol form echoed %q", sub2)
	}
	c3, sub3 := licenseTunnel(t, d, d.Info.EchoHandle, nil, http.Header{"X-License": {strings.ToUpper(l.GUID)}, "X-User-Id": {"srv-1"}})
	if sub3 != "" {
		t.Errorf("header form echoed subprotocol %q", sub3)
	}
	cut := []*reader{
		echoTunnel(t, "license tunnel (one subprotocol)", c1),
		echoTunnel(t, "license tunnel (two subprotocols)", c2),
		echoTunnel(t, "license tunnel (X-License)", c3),
	}
	wantAuditDetail(t, d, "tunnel.license_open", d.Info.EchoHandle, `user "op-17"`)
	wantAuditDetail(t, d, "tunnel.license_open", d.Info.EchoHandle, `user "srv-1"`)

	// Another license of the tenant keeps its tunnel.
	other := issueLicense(t, d, d.Info.TenantID)
	oc, _ := licenseTunnel(t, d, d.Info.EchoHandle, nil, http.Header{"X-License": {other.GUID}})
	otherR := echoTunnel(t, "other license's tunnel", oc)

	for _, tc := range []struct {
		name   string
		protos []string
		hdr    http.Header
		reason string
	}{
		{"malformed subprotocol", []string{"license.not-a-guid"}, nil, "a license is a GUID"},
		{"two licenses", []string{"license." + l.GUID, "license." + other.GUID}, nil, "more than one license"},
		{"malformed header", nil, http.Header{"X-License": {"x"}}, "a license is a GUID"},
		{"user id with a space", nil, http.Header{"X-License": {l.GUID}, "X-User-Id": {"a b"}}, "user id"},
		{"unknown license", []string{"license.0f8fad5b-d9cb-469f-a165-70867728950e"}, nil, "unknown license"},
	} {
		if status, body := licenseRefused(t, d, d.Info.EchoHandle, tc.protos, tc.hdr); status != 401 || !strings.Contains(body, tc.reason) {
			t.Errorf("%s: %d %s; want 401 naming %q", tc.name, status, body, tc.reason)
		}
	}
	// A license is a tunnel credential only.
	err := d.API.Do(ctx, "GET", "/api/sites/"+d.Info.SiteID, nil, nil, func(r *http.Request) { r.Header.Set("X-License", l.GUID) })
	wantRelayError(t, err, 401, "invalid or revoked credential: a license is accepted only on /api/tunnel/{handle}")
	// Only the admin key issues and revokes licenses.
	err = d.API.Do(ctx, "POST", "/api/admin/tenants/"+d.Info.TenantID+"/licenses", nil, nil, demo.Bearer(d.Info.Token))
	wantRelayError(t, err, 403, "forbidden: licenses are issued with the admin key")

	start := time.Now()
	must(t, d.API.Do(ctx, "DELETE", "/api/admin/tenants/"+d.Info.TenantID+"/licenses/"+l.ID, nil, nil, demo.Admin(d.Info.AdminKey)))
	for _, rd := range cut {
		if rd.wantCut(t, start) && (rd.err == nil || !strings.Contains(rd.err.Error(), "license revoked")) {
			t.Errorf("%s ended with %v, want the license's revocation", rd.name, rd.err)
		}
	}
	otherR.wantOpen(t)
	wantAuditDetail(t, d, "license.revoke", l.ID, "tunnels closed: 3")
	if status, body := licenseRefused(t, d, d.Info.EchoHandle, []string{one}, nil); status != 401 || !strings.Contains(body, "license revoked") {
		t.Errorf("revoked license: %d %s", status, body)
	}

	var ls []map[string]any
	must(t, d.API.Do(ctx, "GET", "/api/tenants/"+d.Info.TenantID+"/licenses", nil, &ls, demo.Bearer(d.Info.Token)))
	revoked := 0
	for _, x := range ls {
		if _, ok := x["guid"]; ok {
			t.Errorf("license list shows a GUID: %v", x)
		}
		if x["revoked_at"] != nil {
			revoked++
		}
	}
	// The demo's onboarding license, l and other.
	if len(ls) != 3 || revoked != 1 {
		t.Errorf("licenses of the tenant: %v", ls)
	}
}

// Onboarding a tenant returns its first license, which opens that
// tenant's tunnels only: another tenant's handle is 403.
func TestTenantOnboardingLicense(t *testing.T) {
	d := startDemo(t)
	var ten struct {
		ID      string        `json:"id"`
		License issuedLicense `json:"license"`
	}
	must(t, d.API.Do(context.Background(), "POST", "/api/admin/tenants", map[string]string{"name": "OpCon customer"}, &ten, demo.Admin(d.Info.AdminKey)))
	if ten.License.GUID == "" || ten.License.TenantID != ten.ID {
		t.Fatalf("onboarding answer %+v", ten)
	}
	status, body := licenseRefused(t, d, d.Info.EchoHandle, []string{"license." + ten.License.GUID + ".user.u"}, nil)
	if status != 403 || !strings.Contains(body, "handle does not belong to your tenant") {
		t.Errorf("other tenant's license on the demo's handle: %d %s", status, body)
	}
}

// partnerKey is the answer that issues an nk_ key.
type partnerKey struct {
	ID   string `json:"id"`
	Key  string `json:"key"`
	CIDR string `json:"allowed_ip_cidr"`
}

func issuePartnerKey(t *testing.T, d *demo.Demo, tenant, cidr string) partnerKey {
	t.Helper()
	var k partnerKey
	must(t, d.API.Do(context.Background(), "POST", "/api/admin/tenants/"+tenant+"/partner-keys",
		map[string]string{"label": "NDIS production", "allowed_ip_cidr": cidr}, &k, demo.Admin(d.Info.AdminKey)))
	return k
}

// apiKey authenticates with an nk_ partner key.
func apiKey(k string) demo.Cred { return func(r *http.Request) { r.Header.Set("X-API-Key", k) } }

// partnerSession is what POST /api/v1/sessions answers.
type partnerSession struct {
	cliSession
	TokenHash          string `json:"token_hash"`
	IssuerKeyID        string `json:"issuer_key_id"`
	ExternalOperatorID string `json:"external_operator_id"`
}

func mintPartnerSession(t *testing.T, d *demo.Demo, key, operatorID string) partnerSession {
	t.Helper()
	var s partnerSession
	must(t, d.API.Do(context.Background(), "POST", "/api/v1/sessions",
		map[string]string{"external_operator_id": operatorID, "operator_display_name": "Operator " + operatorID}, &s, apiKey(key)))
	return s
}

// A partner key mints ops_ sessions for its tenant's sites, lists them
// and revokes one by its token's hash; a key pinned to another network is
// refused with the reason, and audited. The ops_ session opens a
// WebSocket tunnel and a CLI mux; revoking the key revokes every session
// it issued, cuts both, and the CLI is refused on its next request.
func TestPartnerKeySessions(t *testing.T) {
	d := startDemo(t)
	ctx := context.Background()
	k := issuePartnerKey(t, d, d.Info.TenantID, "127.0.0.0/8")
	if !strings.HasPrefix(k.Key, "nk_") || k.CIDR != "127.0.0.0/8" {
		t.Fatalf("issued key %+v", k)
	}
	s := mintPartnerSession(t, d, k.Key, "op-7")
	sum := hex.EncodeToString(secret.Hash(s.Token))
	if !strings.HasPrefix(s.Token, "ops_") || s.TokenHash != sum || s.IssuerKeyID != k.ID || s.ExternalOperatorID != "op-7" ||
		len(s.SiteIDs) != 1 || s.SiteIDs[0] != d.Info.SiteID || !s.HardCapAt.After(s.ExpiresAt) || s.UserID != "" {
		t.Fatalf("partner session %+v", s)
	}
	wantAuditDetail(t, d, "cli_session.create", s.ID, `for operator "op-7"`)

	// Refusals, each with its reason.
	err := d.API.Do(ctx, "POST", "/api/v1/sessions", map[string]string{"operator_display_name": "x"}, nil, apiKey(k.Key))
	wantRelayError(t, err, 400, "bad request: external_operator_id needs 1 to 128 bytes without control characters")
	err = d.API.Do(ctx, "POST", "/api/v1/sessions", map[string]any{"external_operator_id": "o", "operator_display_name": "x", "site_ids": []string{"site_nope"}}, nil, apiKey(k.Key))
	wantRelayError(t, err, 404, "site site_nope not found")
	err = d.API.Do(ctx, "GET", "/api/v1/sessions", nil, nil, nil)
	wantRelayError(t, err, 401, "authentication required: send the partner key as X-API-Key: nk_…")
	err = d.API.Do(ctx, "GET", "/api/v1/sessions", nil, nil, apiKey(d.Info.Token))
	wantRelayError(t, err, 401, "invalid or revoked credential: X-API-Key is not a live nk_ partner key")
	far := issuePartnerKey(t, d, d.Info.TenantID, "203.0.113.0/24")
	err = d.API.Do(ctx, "POST", "/api/v1/sessions", map[string]string{"external_operator_id": "o", "operator_display_name": "x"}, nil, apiKey(far.Key))
	wantRelayError(t, err, 403, "forbidden: this partner key is accepted only from 203.0.113.0/24; the call came from 127.0.0.1")
	wantAuditDetail(t, d, "partner_key.refused_address", far.ID, "from 127.0.0.1, outside 203.0.113.0/24")
	err = d.API.Do(ctx, "POST", "/api/admin/tenants/"+d.Info.TenantID+"/partner-keys", map[string]string{"allowed_ip_cidr": "10.0.0.0/33"}, nil, demo.Admin(d.Info.AdminKey))
	wantRelayError(t, err, 400, `bad request: allowed_ip_cidr "10.0.0.0/33" is not a CIDR like 203.0.113.0/24`)
	// nk_ and ops_ are refused elsewhere, with where they belong.
	err = d.API.Do(ctx, "GET", "/api/sites/"+d.Info.SiteID, nil, nil, demo.Bearer(k.Key))
	wantRelayError(t, err, 401, "invalid or revoked credential: an nk_ partner key is accepted only as X-API-Key on /api/v1/sessions")
	err = d.API.Do(ctx, "GET", "/api/sites/"+d.Info.SiteID, nil, nil, demo.Bearer(s.Token))
	wantRelayError(t, err, 401, "invalid or revoked credential: an ops_ CLI session is accepted only by the CLI's routes and /api/tunnel/{handle}")

	var list []partnerSession
	must(t, d.API.Do(ctx, "GET", "/api/v1/sessions", nil, &list, apiKey(k.Key)))
	found := false
	for _, x := range list {
		found = found || x.ID == s.ID && x.TokenHash == sum
		if x.Token != "" {
			t.Errorf("session list shows a token: %+v", x)
		}
	}
	if !found {
		t.Fatalf("session %s not in the list %+v", s.ID, list)
	}

	// DELETE by token hash.
	s2 := mintPartnerSession(t, d, k.Key, "op-8")
	err = d.API.Do(ctx, "DELETE", "/api/v1/sessions/xyz", nil, nil, apiKey(k.Key))
	wantRelayError(t, err, 400, "bad request: tokenHash is the hex SHA-256 of the ops_ token (64 hex digits)")
	err = d.API.Do(ctx, "DELETE", "/api/v1/sessions/"+strings.Repeat("0", 64), nil, nil, apiKey(k.Key))
	wantStatus(t, err, 404)
	must(t, d.API.Do(ctx, "DELETE", "/api/v1/sessions/"+s2.TokenHash, nil, nil, apiKey(k.Key)))
	wantAudit(t, d, "cli_session.revoke", s2.ID)
	_, err = cli.DialTunnel(ctx, cliRelay(d, s2.Token), d.Info.EchoHandle)
	wantRelayError(t, err, 401, "CLI session revoked")

	// What the session opens, cut by the key's revocation.
	c, err := cli.DialTunnel(ctx, cliRelay(d, s.Token), d.Info.EchoHandle)
	must(t, err)
	defer c.Close()
	rd := echoTunnel(t, "ops_ WebSocket tunnel", c)
	m := dialMux(t, d, s.Token)
	st, err := m.open("127.0.0.2", uint16(d.Echo.Addr().Port))
	must(t, err)
	defer st.Close()
	// A session of another key keeps working.
	k2 := issuePartnerKey(t, d, d.Info.TenantID, "")
	s3 := mintPartnerSession(t, d, k2.Key, "op-9")
	c3, err := cli.DialTunnel(ctx, cliRelay(d, s3.Token), d.Info.EchoHandle)
	must(t, err)
	defer c3.Close()
	otherR := echoTunnel(t, "other key's session's tunnel", c3)
	run := runCLI(t, d, s.Token)

	start := time.Now()
	must(t, d.API.Do(ctx, "DELETE", "/api/admin/tenants/"+d.Info.TenantID+"/partner-keys/"+k.ID, nil, nil, demo.Admin(d.Info.AdminKey)))
	if rd.wantCut(t, start) && (rd.err == nil || !strings.Contains(rd.err.Error(), "partner key revoked")) {
		t.Errorf("tunnel ended with %v, want the key's revocation", rd.err)
	}
	wantCLIExit(t, run, keyRevokedExit)
	select {
	case <-m.dead:
		t.Logf("CLI mux closed %v after its partner key was revoked", time.Since(start).Round(time.Millisecond))
	case <-time.After(cutBound):
		t.Fatal("CLI mux still open after its partner key was revoked")
	}
	otherR.wantOpen(t)
	wantAuditDetail(t, d, "partner_key.revoke", k.ID, "sessions revoked: 1 ("+s.ID+"); connections closed: ")
	// The CLI's next request is refused with the key's revocation, and so
	// is the key; the session the partner revoked before keeps its own
	// reason.
	err = d.API.Do(ctx, "GET", "/api/cli/sessions/plan", nil, nil, demo.Bearer(s.Token))
	wantRelayError(t, err, 401, "partner key revoked: the CLI sessions it issued are revoked with it")
	_, err = cli.DialTunnel(ctx, cliRelay(d, s.Token), d.Info.EchoHandle)
	wantRelayError(t, err, 401, "partner key revoked: the CLI sessions it issued are revoked with it")
	_, err = cli.DialTunnel(ctx, cliRelay(d, s2.Token), d.Info.EchoHandle)
	wantRelayError(t, err, 401, "CLI session revoked")
	err = d.API.Do(ctx, "GET", "/api/v1/sessions", nil, nil, apiKey(k.Key))
	wantRelayError(t, err, 401, "invalid or revoked credential: X-API-Key is not a live nk_ partner key")
}

// An ops_ session opens /api/tunnel/{handle} for the handles of its
// sites only: a handle of another site of the same tenant is 403.
func TestOpsTunnelScopedToSessionSites(t *testing.T) {
	d := startDemo(t)
	ctx := context.Background()
	other := addSite(t, d)
	var dev struct {
		Handles map[string]string `json:"handles"`
	}
	must(t, d.API.Do(ctx, "POST", "/api/sites/"+other+"/devices", map[string]any{"host": "127.0.0.1", "ports": []int{d.Echo.Addr().Port}}, &dev, demo.Bearer(d.Info.Token)))
	otherHandle := dev.Handles[strconv.Itoa(d.Echo.Addr().Port)]

	s := mintCLI(t, d)
	c, err := cli.DialTunnel(ctx, cliRelay(d, s.Token), d.Info.EchoHandle)
	must(t, err)
	defer c.Close()
	rd := echoTunnel(t, "ops_ tunnel in scope", c)
	_, err = cli.DialTunnel(ctx, cliRelay(d, s.Token), otherHandle)
	wantRelayError(t, err, 403, "forbidden: handle "+otherHandle+" is not in this CLI session's sites")

	start := time.Now()
	must(t, d.API.Do(ctx, "DELETE", "/api/cli/sessions/"+s.ID, nil, nil, demo.Bearer(d.Info.Token)))
	rd.wantCut(t, start)
	_, err = cli.DialTunnel(ctx, cliRelay(d, s.Token), d.Info.EchoHandle)
	wantRelayError(t, err, 401, "CLI session revoked")
}
