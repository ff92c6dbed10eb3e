package relay_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/relay/store"
)

// A license and a partner key revoked by another relay of the
// installation (its writes reach the database through a store of its
// own, as TestRelaysShareChanges does) cut what they opened on relay A:
// the license's WebSocket tunnel, and the tunnel and CLI mux of a
// session the key issued. A refuses both credentials at once. A license
// revoked by a write that sent no change is cut by the next resync.
func TestCredentialRevokedElsewhereCutsTunnels(t *testing.T) {
	d := startPGDemo(t)
	ctx := context.Background()
	other, err := store.OpenPostgres(ctx, d.dsn, store.PostgresOptions{Log: quietLogger()})
	must(t, err)
	defer other.Close()

	l := issueLicense(t, d.Demo, d.Info.TenantID)
	lc, _ := licenseTunnel(t, d.Demo, d.Info.EchoHandle, []string{"license." + l.GUID + ".user.op-1"}, nil)
	lr := echoTunnel(t, "license tunnel on A", lc)
	start := time.Now()
	must(t, other.RevokeLicense(ctx, l.ID, time.Now()))
	if lr.wantCut(t, start) && (lr.err == nil || !strings.Contains(lr.err.Error(), "license revoked")) {
		t.Errorf("license tunnel ended with %v", lr.err)
	}
	if status, body := licenseRefused(t, d.Demo, d.Info.EchoHandle, nil, http.Header{"X-License": {l.GUID}}); status != 401 {
		t.Errorf("license revoked elsewhere: %d %s", status, body)
	}

	k := issuePartnerKey(t, d.Demo, d.Info.TenantID, "")
	s := mintPartnerSession(t, d.Demo, k.Key, "op-2")
	c, err := cli.DialTunnel(ctx, cliRelay(d.Demo, s.Token), d.Info.EchoHandle)
	must(t, err)
	defer c.Close()
	rd := echoTunnel(t, "partner session's tunnel on A", c)
	m := dialMux(t, d.Demo, s.Token)
	st, err := m.open("127.0.0.2", uint16(d.Echo.Addr().Port))
	must(t, err)
	defer st.Close()
	run := runCLI(t, d.Demo, s.Token)
	start = time.Now()
	revoked, err := other.RevokePartnerKey(ctx, k.ID, time.Now())
	must(t, err)
	if len(revoked) != 1 || revoked[0] != s.ID {
		t.Fatalf("revoked sessions %v, want [%s]", revoked, s.ID)
	}
	if rd.wantCut(t, start) && (rd.err == nil || !strings.Contains(rd.err.Error(), "partner key revoked")) {
		t.Errorf("partner session's tunnel on A ended with %v, want the key's revocation", rd.err)
	}
	wantCLIExit(t, run, keyRevokedExit)
	select {
	case <-m.dead:
		t.Logf("CLI mux on A closed %v after its partner key was revoked elsewhere", time.Since(start).Round(time.Millisecond))
	case <-time.After(cutBound):
		t.Fatal("CLI mux on A still open after its partner key was revoked elsewhere")
	}
	_, err = cli.DialTunnel(ctx, cliRelay(d.Demo, s.Token), d.Info.EchoHandle)
	wantRelayError(t, err, 401, "partner key revoked: the CLI sessions it issued are revoked with it")
	wantAuditDetail(t, d.Demo, "credential.cut", s.ID, "(partner key revoked: the CLI sessions it issued are revoked with it, revoked on another relay)")

	// Unannounced: only a resync finds it.
	l2 := issueLicense(t, d.Demo, d.Info.TenantID)
	lc2, _ := licenseTunnel(t, d.Demo, d.Info.EchoHandle, nil, http.Header{"X-License": {l2.GUID}})
	lr2 := echoTunnel(t, "license tunnel revoked unannounced", lc2)
	db, err := pgx.Connect(ctx, d.dsn)
	must(t, err)
	defer db.Close(ctx)
	_, err = db.Exec(ctx, `UPDATE licenses SET revoked_at = $1 WHERE id = $2`, time.Now().UnixMicro(), l2.ID)
	must(t, err)
	lr2.wantOpen(t)
	start = time.Now()
	must(t, other.Notify(ctx, store.Change{Kind: store.ChangeResync}))
	if lr2.wantCut(t, start) && (lr2.err == nil || !strings.Contains(lr2.err.Error(), "license revoked")) {
		t.Errorf("tunnel ended with %v, want the license's revocation", lr2.err)
	}
}
