package relay_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"

	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/testwait"
	"github.com/nanodems/connector/relay"
	"github.com/nanodems/connector/relay/store"
	"github.com/nanodems/connector/rtsp"
	"github.com/nanodems/connector/rtsp/rtsptest"
)

// Tests of RTSP credentials (docs/rtsp.md, "Credentials"): URLs a VMS
// keeps, rtsp://user:secret@relay/{handle}/…, checked with Digest by the
// gateway before it dials anything.

type rtspCredOut struct {
	ID        string  `json:"id"`
	User      string  `json:"user"`
	Secret    string  `json:"secret"`
	Name      string  `json:"name"`
	TenantID  string  `json:"tenant_id"`
	SiteID    string  `json:"site_id"`
	ExpiresAt *string `json:"expires_at"`
}

func createRTSPCred(t *testing.T, d *demo.Demo, cred demo.Cred, tenantID string, body map[string]any) rtspCredOut {
	t.Helper()
	var out rtspCredOut
	must(t, d.API.Do(context.Background(), "POST", "/api/tenants/"+tenantID+"/rtsp-credentials", body, &out, cred))
	return out
}

// credURL is the URL a VMS keeps: the credential in its userinfo.
func credURL(scheme, addr, user, secret, handle, path string) string {
	return scheme + "://" + url.UserPassword(user, secret).String() + "@" + addr + "/" + handle + path
}

// digestAuthorization answers a gateway challenge as a player does
// (RFC 2069 form, as offered).
func digestAuthorization(t *testing.T, h rtsp.Header, method, uri, user, secret string) string {
	t.Helper()
	ch := h.Get("WWW-Authenticate")
	if !strings.HasPrefix(ch, "Digest ") {
		t.Fatalf("no Digest challenge: WWW-Authenticate %q", ch)
	}
	var realm, nonce string
	for _, p := range strings.Split(strings.TrimPrefix(ch, "Digest "), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch k {
		case "realm":
			realm = strings.Trim(v, `"`)
		case "nonce":
			nonce = strings.Trim(v, `"`)
		}
	}
	md := func(s string) string { sum := md5.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }
	resp := md(md(user+":"+realm+":"+secret) + ":" + nonce + ":" + md(method+":"+uri))
	return fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s"`, user, realm, nonce, uri, resp)
}

// TestRTSPCredentialAPI: create shows the secret once, list shows the
// tenant's live credentials without it, revoke is 204 then 404, bad input
// is a 400 or 404 with nothing stored, and every change is audited.
func TestRTSPCredentialAPI(t *testing.T) {
	t.Parallel()
	d := startDemo(t)
	ctx, tok := context.Background(), demo.Bearer(d.Info.Token)
	base := "/api/tenants/" + d.Info.TenantID + "/rtsp-credentials"

	a := createRTSPCred(t, d, tok, d.Info.TenantID, map[string]any{"name": "Milestone at HQ"})
	if !strings.HasPrefix(a.ID, "rc_") || a.User != a.ID || !strings.HasPrefix(a.Secret, "rs_") || a.ExpiresAt != nil || a.SiteID != "" {
		t.Fatalf("created %+v: want rc_ id as user, rs_ secret, no expiry, no site", a)
	}
	exp := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	b := createRTSPCred(t, d, tok, d.Info.TenantID, map[string]any{"name": "NVR", "site_id": d.Info.SiteID, "expires_at": exp})
	if b.SiteID != d.Info.SiteID || b.ExpiresAt == nil {
		t.Fatalf("site-scoped credential %+v", b)
	}
	// Only HA1 is stored: not the secret, not its plain hash.
	sc, err := d.Relay.Store().GetRTSPCredential(ctx, a.ID)
	must(t, err)
	if sc.HA1 != rtsp.HA1(a.ID, a.Secret) || strings.Contains(sc.HA1, a.Secret) {
		t.Fatalf("stored HA1 %q, want MD5(user:realm:secret)", sc.HA1)
	}

	for _, bad := range []struct {
		body   map[string]any
		status int
	}{
		{map[string]any{}, 400},
		{map[string]any{"name": "  "}, 400},
		{map[string]any{"name": "a\nb"}, 400},
		{map[string]any{"name": "x", "expires_at": time.Now().Add(-time.Hour)}, 400},
		{map[string]any{"name": "x", "site_id": "site_doesnotexist"}, 404},
		{map[string]any{"name": "x", "secret": "mine"}, 400},
	} {
		err := d.API.Do(ctx, "POST", base, bad.body, nil, tok)
		wantStatus(t, err, bad.status)
	}
	err = d.API.Do(ctx, "POST", base, map[string]any{"name": "x"}, nil, nil)
	wantStatus(t, err, 401)

	var list struct {
		Credentials []map[string]any `json:"credentials"`
	}
	must(t, d.API.Do(ctx, "GET", base, nil, &list, tok))
	if len(list.Credentials) != 2 || list.Credentials[0]["id"] != a.ID || list.Credentials[1]["id"] != b.ID {
		t.Fatalf("list %v, want %s and %s", list.Credentials, a.ID, b.ID)
	}
	for _, c := range list.Credentials {
		if _, ok := c["secret"]; ok {
			t.Fatalf("list shows a secret: %v", c)
		}
	}
	must(t, d.API.Do(ctx, "DELETE", base+"/"+a.ID, nil, nil, tok))
	wantStatus(t, d.API.Do(ctx, "DELETE", base+"/"+a.ID, nil, nil, tok), 404)
	wantStatus(t, d.API.Do(ctx, "DELETE", base+"/rc_unknown", nil, nil, tok), 404)
	must(t, d.API.Do(ctx, "GET", base, nil, &list, tok))
	if len(list.Credentials) != 1 || list.Credentials[0]["id"] != b.ID {
		t.Fatalf("list after revoke %v, want %s only", list.Credentials, b.ID)
	}
	for action, n := range map[string]int{"rtsp_credential.create": 2, "rtsp_credential.revoke": 1} {
		evs, err := d.Relay.Store().ListAudit(ctx, store.AuditFilter{TenantID: d.Info.TenantID, Action: action})
		must(t, err)
		if len(evs) != n {
			t.Fatalf("audit %s: %d events, want %d", action, len(evs), n)
		}
	}
}

// TestRTSPCredentialDigest: the gateway challenges with Digest, refuses a
// wrong secret with 401 before anything is dialed (the agent opens no
// tunnel, the camera sees no request), keeps the credential to its
// tenant and site, and lets a right one play.
func TestRTSPCredentialDigest(t *testing.T) {
	t.Parallel()
	d := startDemo(t)
	ctx, tok, admin := context.Background(), demo.Bearer(d.Info.Token), demo.Admin(d.Info.AdminKey)
	cam, h := rtspCamera(t, d, rtsptest.Options{User: rtspUser, Pass: rtspPass}, true)
	c := createRTSPCred(t, d, tok, d.Info.TenantID, map[string]any{"name": "VMS", "site_id": d.Info.SiteID})
	addr := d.Relay.RTSPAddr()
	u := "rtsp://" + addr + "/" + h + "/Streaming/Channels/101"

	tunnels, camReqs := d.Agent.Counters().TunnelsTotal, len(cam.Requests())
	noDial := func(what string) {
		t.Helper()
		if n := d.Agent.Counters().TunnelsTotal; n != tunnels {
			t.Fatalf("%s: the agent opened %d tunnels", what, n-tunnels)
		}
		if n := len(cam.Requests()); n != camReqs {
			t.Fatalf("%s: the camera saw %d requests", what, n-camReqs)
		}
	}
	// No login: a Digest challenge of the gateway's realm.
	code, ch := rtspRequest(t, addr, "DESCRIBE", u)
	if code != 401 || !strings.Contains(ch.Get("WWW-Authenticate"), `realm="`+rtsp.DigestRealm+`"`) || ch.Get("X-Nanodems-Error") == "" {
		t.Fatalf("DESCRIBE without login: %d %v", code, ch)
	}
	var hdr rtsp.Header
	// Wrong secret, unknown user, another handle's uri: 401, nothing dialed.
	for _, tc := range []struct{ what, user, secret, uri string }{
		{"wrong secret", c.User, c.Secret + "x", u},
		{"unknown user", "rc_nosuchcredential00", c.Secret, u},
		{"uri of another handle", c.User, c.Secret, "rtsp://" + addr + "/" + d.Info.EchoHandle + "/"},
	} {
		code, hdr = rtspRequest(t, addr, "DESCRIBE", u, "Authorization", digestAuthorization(t, ch, "DESCRIBE", tc.uri, tc.user, tc.secret))
		if code != 401 || hdr.Get("WWW-Authenticate") == "" {
			t.Fatalf("%s: %d %v, want 401 with a new challenge", tc.what, code, hdr)
		}
		noDial(tc.what)
	}
	// A forged nonce is challenged again, not taken.
	forged := strings.Replace(digestAuthorization(t, ch, "DESCRIBE", u, c.User, c.Secret), `nonce="`, `nonce="00`, 1)
	if code, _ = rtspRequest(t, addr, "DESCRIBE", u, "Authorization", forged); code != 401 {
		t.Fatalf("forged nonce: %d", code)
	}
	noDial("forged nonce")

	// Scope: a credential of another site of the tenant, or of another
	// tenant, is refused for this handle (403), still before any dial.
	var site struct{ ID string }
	must(t, d.API.Do(ctx, "POST", "/api/tenants/"+d.Info.TenantID+"/sites", map[string]string{"name": "Other site"}, &site, tok))
	other := createRTSPCred(t, d, tok, d.Info.TenantID, map[string]any{"name": "other site", "site_id": site.ID})
	var ten struct{ ID string }
	must(t, d.API.Do(ctx, "POST", "/api/admin/tenants", map[string]string{"name": "Tenant B"}, &ten, admin))
	foreign := createRTSPCred(t, d, admin, ten.ID, map[string]any{"name": "B's VMS"})
	for _, tc := range []struct {
		what string
		cred rtspCredOut
	}{{"another site's credential", other}, {"another tenant's credential", foreign}} {
		code, hdr = rtspRequest(t, addr, "DESCRIBE", u, "Authorization", digestAuthorization(t, ch, "DESCRIBE", u, tc.cred.User, tc.cred.Secret))
		if code != 403 {
			t.Fatalf("%s: %d %v, want 403", tc.what, code, hdr)
		}
		noDial(tc.what)
	}
	// The tenant-wide credential of the demo's tenant plays; gortsplib
	// answers the challenge from the URL's userinfo.
	all := createRTSPCred(t, d, tok, d.Info.TenantID, map[string]any{"name": "tenant-wide"})
	for _, cr := range []rtspCredOut{c, all} {
		p := rtspPull(t, credURL("rtsp", addr, cr.User, cr.Secret, h, "/Streaming/Channels/101"), gortsplib.ProtocolTCP, gortsplib.TunnelNone)
		p.wait(t, 20, 10*time.Second)
		p.c.Close()
	}
	// The camera never saw the gateway's Digest: its own login answered it.
	for _, r := range cam.Requests() {
		if a := r.Header["Authorization"]; strings.Contains(a, rtsp.DigestRealm) {
			t.Fatalf("the camera got the client's Authorization: %s", a)
		}
	}
}

// TestRTSPCredentialRevoke: revoking a credential ends the sessions it
// opened (the player is cut), audits how many, and refuses it from then on.
func TestRTSPCredentialRevoke(t *testing.T) {
	t.Parallel()
	d := startDemo(t)
	ctx, tok := context.Background(), demo.Bearer(d.Info.Token)
	_, h := rtspCamera(t, d, rtsptest.Options{User: rtspUser, Pass: rtspPass}, true)
	c := createRTSPCred(t, d, tok, d.Info.TenantID, map[string]any{"name": "VMS"})
	keep := createRTSPCred(t, d, tok, d.Info.TenantID, map[string]any{"name": "another VMS"})
	u := credURL("rtsp", d.Relay.RTSPAddr(), c.User, c.Secret, h, "/live")
	p := rtspPull(t, u, gortsplib.ProtocolTCP, gortsplib.TunnelNone)
	q := rtspPull(t, credURL("rtsp", d.Relay.RTSPAddr(), keep.User, keep.Secret, h, "/live"), gortsplib.ProtocolTCP, gortsplib.TunnelNone)
	p.wait(t, 10, 10*time.Second)
	q.wait(t, 10, 10*time.Second)

	start := time.Now()
	must(t, d.API.Do(ctx, "DELETE", "/api/tenants/"+d.Info.TenantID+"/rtsp-credentials/"+c.ID, nil, nil, tok))
	if err := testwait.Until(10*time.Second, func() error {
		if p.err.Load() == nil {
			return fmt.Errorf("the revoked credential's player still plays (%d packets)", p.count.Load())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("revoke to the player's end: %v (%s)", time.Since(start).Round(time.Millisecond), p.why())
	// The other credential's viewer of the same stream plays on.
	n := q.count.Load()
	q.wait(t, n+10, 10*time.Second)

	evs, err := d.Relay.Store().ListAudit(ctx, store.AuditFilter{TenantID: d.Info.TenantID, Action: "rtsp_credential.revoke"})
	must(t, err)
	if len(evs) != 1 || evs[0].Target != c.ID || !strings.Contains(evs[0].Detail, "sessions closed: 1") {
		t.Fatalf("audit of the revocation: %+v", evs)
	}
	if _, err := rtspPullErr(u, gortsplib.ProtocolTCP, gortsplib.TunnelNone); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("the revoked credential plays again: %v", err)
	}
}

// TestRTSPCredentialPlayers: ffmpeg and GStreamer play a credential URL
// over TCP and UDP.
func TestRTSPCredentialPlayers(t *testing.T) {
	t.Parallel()
	d := startDemo(t)
	_, h := rtspCamera(t, d, rtsptest.Options{User: rtspUser, Pass: rtspPass, Audio: true}, true)
	c := createRTSPCred(t, d, demo.Bearer(d.Info.Token), d.Info.TenantID, map[string]any{"name": "VMS"})
	for _, transport := range []string{"tcp", "udp"} {
		t.Run("ffmpeg-"+transport, func(t *testing.T) {
			ff := lookPlayer(t, "ffmpeg", "ffmpeg")
			u := credURL("rtsp", d.Relay.RTSPAddr(), c.User, c.Secret, h, "/ff-"+transport)
			ffmpegFrames(t, ff, "-rtsp_transport", transport, "-i", u)
		})
		t.Run("gstreamer-"+transport, func(t *testing.T) {
			gst := lookPlayer(t, "gst-launch-1.0", "gstreamer1.0-tools gstreamer1.0-plugins-good")
			u := credURL("rtsp", d.Relay.RTSPAddr(), c.User, c.Secret, h, "/gst-"+transport)
			gstBuffers(t, gst, u, transport)
		})
	}
}

// lookPlayer finds a player binary: missing, it fails under CI (.ci/run
// installs pkgs) and skips elsewhere.
func lookPlayer(t *testing.T, name, pkgs string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if ciRequired() {
			t.Fatalf("%s is not installed (.ci/run installs %s)", name, pkgs)
		}
		t.Skipf("%s is not installed (Debian: %s)", name, pkgs)
	}
	return p
}

// ffmpegFrames runs ffmpeg with args and wants 10 decoded video frames.
func ffmpegFrames(t *testing.T, ff string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args = append(append([]string{"-hide_banner", "-nostdin"}, args...), "-frames:v", "10", "-f", "null", "-")
	out, err := exec.CommandContext(ctx, ff, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "frame=   10") && !strings.Contains(string(out), "frame=10") {
		t.Fatalf("ffmpeg decoded no 10 frames:\n%s", out)
	}
}

// gstBuffers plays u with GStreamer's rtspsrc over transport and wants 30
// depayloaded H.264 buffers. rtspsrc, stopping at fakesink's end of
// stream, races its own PAUSE against its own flush and may then exit 1
// with an error of gst_rtspsrc_pause; after 30 buffers that is how it
// stops, not a failure to play.
func gstBuffers(t *testing.T, gst, u, transport string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, gst, "-v", "rtspsrc", "location="+u, "protocols="+transport, "latency=0",
		"!", "rtph264depay", "!", "fakesink", "silent=false", "num-buffers=30", "sync=false").CombinedOutput()
	chains := strings.Count(string(out), "(fakesink0:sink) (")
	if chains < 30 {
		t.Fatalf("gst-launch-1.0 over %s: %d buffers, want 30 (%v)\n%s", transport, chains, err, out)
	}
	if err != nil && !strings.Contains(string(out), "gst_rtspsrc_pause") {
		t.Fatalf("gst-launch-1.0 over %s played %d buffers, then: %v\n%s", transport, chains, err, out)
	}
}

// TestRTSPS: the gateway's TLS listener plays a minted rtsps:// URL and a
// credential URL with ffmpeg (TCP interleaved), and speaks nothing but
// TLS.
func TestRTSPS(t *testing.T) {
	t.Parallel()
	d := startDemo(t, func(c *relay.Config) { c.RTSPSAddr = "127.0.0.1:0" })
	ff := lookPlayer(t, "ffmpeg", "ffmpeg")
	_, h := rtspCamera(t, d, rtsptest.Options{User: rtspUser, Pass: rtspPass}, true)
	addr := d.Relay.RTSPSAddr()
	if addr == "" {
		t.Fatal("no RTSPS listener")
	}
	var out struct {
		URL      string `json:"url"`
		RTSPSURL string `json:"rtsps_url"`
	}
	must(t, d.API.Do(context.Background(), "POST", "/api/handles/"+h+"/rtsp-url", map[string]any{"path": "/tls"}, &out, demo.Bearer(d.Info.Token)))
	if !strings.HasPrefix(out.RTSPSURL, "rtsps://"+addr+"/"+h+"/tls?nd_grant=") {
		t.Fatalf("rtsps_url %q, want rtsps://%s/%s/tls?nd_grant=…", out.RTSPSURL, addr, h)
	}
	c := createRTSPCred(t, d, demo.Bearer(d.Info.Token), d.Info.TenantID, map[string]any{"name": "VMS over TLS"})
	t.Run("grant", func(t *testing.T) {
		ffmpegFrames(t, ff, "-rtsp_transport", "tcp", "-i", out.RTSPSURL)
	})
	t.Run("credential", func(t *testing.T) {
		ffmpegFrames(t, ff, "-rtsp_transport", "tcp", "-i", credURL("rtsps", addr, c.User, c.Secret, h, "/tls"))
	})
	t.Run("no clear text", func(t *testing.T) {
		// A plain RTSP request on the TLS port gets no RTSP answer.
		cn, err := net.Dial("tcp", addr)
		must(t, err)
		defer cn.Close()
		fmt.Fprintf(cn, "OPTIONS rtsp://%s/%s/ RTSP/1.0\r\nCSeq: 1\r\n\r\n", addr, h)
		cn.SetReadDeadline(time.Now().Add(10 * time.Second))
		b := make([]byte, 64)
		n, _ := cn.Read(b)
		if strings.HasPrefix(string(b[:n]), "RTSP/") {
			t.Fatalf("the TLS port answered clear text: %q", b[:n])
		}
	})
}

// TestRTSPCameraRefusesStoredLogin: a stored login the camera refuses is
// answered with the relay's 401 and one-line reason, without the camera's
// challenge or Server header.
func TestRTSPCameraRefusesStoredLogin(t *testing.T) {
	t.Parallel()
	d := startDemo(t)
	cam, err := rtsptest.Start(rtsptest.Options{User: rtspUser, Pass: rtspPass})
	must(t, err)
	t.Cleanup(cam.Close)
	var dev struct {
		Handles map[string]string `json:"handles"`
	}
	must(t, d.API.Do(context.Background(), "POST", "/api/sites/"+d.Info.SiteID+"/devices",
		map[string]any{"host": "127.0.0.1", "ports": []int{cam.Port}, "label": "cam", "username": rtspUser, "password": "not-the-password"},
		&dev, demo.Bearer(d.Info.Token)))
	must(t, d.WaitAgent(context.Background(), 5*time.Second))
	h := dev.Handles[fmt.Sprint(cam.Port)]
	// The camera's own 401 carries its Server header: what must not pass.
	if _, camHdr := rtspRequest(t, cam.Addr, "DESCRIBE", cam.URL("/x")); camHdr.Get("Server") == "" {
		t.Fatal("the stand-in camera sends no Server header: the test would prove nothing")
	}
	u := mintRTSP(t, d, demo.Bearer(d.Info.Token), h, "/x", 0)
	code, hdr := rtspRequest(t, d.Relay.RTSPAddr(), "DESCRIBE", u)
	if code != 401 || hdr.Get("X-Nanodems-Error") != "camera refused the stored credentials" ||
		hdr.Has("WWW-Authenticate") || hdr.Get("Server") != "nanodems-rtsp-gateway" {
		t.Fatalf("DESCRIBE with a refused stored login: %d %v", code, hdr)
	}
}

// TestRTSPCredentialRevokedByAnotherRelay: relays on one database share
// revocations: a credential revoked through another store (another
// relay's write) ends the RTSP session it opened on this relay, which
// then refuses it.
func TestRTSPCredentialRevokedByAnotherRelay(t *testing.T) {
	d := startPGDemo(t)
	ctx := context.Background()
	other, err := store.OpenPostgres(ctx, d.dsn, store.PostgresOptions{Log: quietLogger()})
	must(t, err)
	defer other.Close()
	_, h := rtspCamera(t, d.Demo, rtsptest.Options{User: rtspUser, Pass: rtspPass}, true)
	c := createRTSPCred(t, d.Demo, demo.Bearer(d.Info.Token), d.Info.TenantID, map[string]any{"name": "VMS"})
	u := credURL("rtsp", d.Relay.RTSPAddr(), c.User, c.Secret, h, "/live")
	p := rtspPull(t, u, gortsplib.ProtocolTCP, gortsplib.TunnelNone)
	p.wait(t, 10, 10*time.Second)
	start := time.Now()
	must(t, other.RevokeRTSPCredential(ctx, c.ID, time.Now()))
	if err := testwait.Until(10*time.Second, func() error {
		if p.err.Load() == nil {
			return fmt.Errorf("the player of a credential revoked elsewhere still plays")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("revoked on another store to the player's end: %v", time.Since(start).Round(time.Millisecond))
	if _, err := rtspPullErr(u, gortsplib.ProtocolTCP, gortsplib.TunnelNone); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("the credential revoked elsewhere plays again: %v", err)
	}
}
