package relay_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/rtsp"
	"github.com/nanodems/connector/rtsp/rtsptest"
)

// The RTSP part of the isolation matrix: the gateway's plain and TLS
// listeners are access paths outside the HTTP route table, so their rows
// live here. Each row is one credential as a player presents it (a grant
// in the URL, an rc_/rs_ RTSP credential answering the Digest challenge,
// or a bad one) on tenant A's camera handle or tenant B's handle; each
// is sent as DESCRIBE and OPTIONS on both listeners and must get exactly
// its status.

// rtspIsoCred is one column of the RTSP rows: how the request carries
// (or lacks) a credential.
type rtspIsoCred struct {
	name string
	// grant is the nd_grant query value; user and secret are an RTSP
	// credential answered to the challenge with Digest. All empty: none.
	grant, user, secret string
}

// rtspIsoRow is a credential on a handle, with the status the gateway
// must answer.
type rtspIsoRow struct {
	cred   rtspIsoCred
	handle string // "A" (A's camera) or "B" (B's device)
	want   int
}

// rtspIsolation runs the RTSP rows. It mints and revokes credentials of
// tenant A, so it runs after the HTTP rows (whose snapshot of A it would
// change).
func (f *isoFixture) rtspIsolation(t *testing.T) {
	d, ctx := f.d, context.Background()
	admin, aTok := demo.Admin(d.Info.AdminKey), demo.Bearer(d.Info.Token)
	_, hA := rtspCamera(t, d, rtsptest.Options{User: rtspUser, Pass: rtspPass}, true)

	grantOf := func(u string) string { return u[strings.Index(u, "nd_grant=")+len("nd_grant="):] }
	aGrant := grantOf(mintRTSP(t, d, aTok, hA, "/live", 0))
	bGrant := grantOf(mintRTSP(t, d, demo.Bearer(f.bToken), f.bHandle, "/live", 0))
	// A grant minted with an nt_ token that is then revoked.
	var spare struct{ ID, Token string }
	must(t, d.API.Do(ctx, "POST", "/api/users/"+f.user+"/tokens", nil, &spare, admin))
	revokedGrant := grantOf(mintRTSP(t, d, demo.Bearer(spare.Token), hA, "/live", 0))
	must(t, d.API.Do(ctx, "DELETE", "/api/users/"+f.user+"/tokens/"+spare.ID, nil, nil, admin))
	aCred := createRTSPCred(t, d, aTok, f.tenant, map[string]any{"name": "A's VMS"})
	gone := createRTSPCred(t, d, aTok, f.tenant, map[string]any{"name": "A's revoked VMS"})
	must(t, d.API.Do(ctx, "DELETE", "/api/tenants/"+f.tenant+"/rtsp-credentials/"+gone.ID, nil, nil, aTok))
	bCred := createRTSPCred(t, d, demo.Bearer(f.bToken), f.bTenant, map[string]any{"name": "B's VMS"})

	var (
		none         = rtspIsoCred{name: "none"}
		garbageGrant = rtspIsoCred{name: "garbage grant", grant: "garbage"}
		garbageCred  = rtspIsoCred{name: "garbage credential", user: "rc_garbage", secret: "rs_garbage"}
		ownGrant     = rtspIsoCred{name: "A's grant", grant: aGrant}
		ownCred      = rtspIsoCred{name: "A's RTSP credential", user: aCred.User, secret: aCred.Secret}
		revokedCred  = rtspIsoCred{name: "A's revoked RTSP credential", user: gone.User, secret: gone.Secret}
		revokedTok   = rtspIsoCred{name: "A's grant minted by a revoked nt_", grant: revokedGrant}
		otherGrant   = rtspIsoCred{name: "B's grant", grant: bGrant}
		otherCred    = rtspIsoCred{name: "B's RTSP credential", user: bCred.User, secret: bCred.Secret}
	)
	rows := []rtspIsoRow{
		{none, "A", 401}, {garbageGrant, "A", 401}, {garbageCred, "A", 401},
		{ownGrant, "A", 200}, {ownCred, "A", 200},
		{revokedCred, "A", 401}, {revokedTok, "A", 401},
		{otherGrant, "A", 403}, {otherCred, "A", 403},
		// A's credentials on B's handle: the handle's tenant is checked
		// first (403), before a grant's handle.
		{none, "B", 401}, {ownGrant, "B", 403}, {ownCred, "B", 403},
		{revokedCred, "B", 401},
		// An unknown handle is unknown to every credential.
		{ownGrant, "unknown", 404}, {ownCred, "unknown", 404}, {otherCred, "unknown", 404},
	}

	tlsConf := cli.Relay{Pin: d.Info.CAPin}.TLSConfig()
	listeners := []struct {
		scheme, addr string
		dial         func() (net.Conn, error)
	}{
		{"rtsp", d.Relay.RTSPAddr(), func() (net.Conn, error) { return net.DialTimeout("tcp", d.Relay.RTSPAddr(), 10*time.Second) }},
		{"rtsps", d.Relay.RTSPSAddr(), func() (net.Conn, error) {
			return tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", d.Relay.RTSPSAddr(), tlsConf)
		}},
	}
	if listeners[1].addr == "" {
		t.Fatal("the isolation fixture's relay has no RTSPS listener")
	}
	for _, l := range listeners {
		send := func(method, u string, hdr ...string) (int, rtsp.Header) {
			t.Helper()
			c, err := l.dial()
			must(t, err)
			defer c.Close()
			return rtspRoundTrip(t, c, bufio.NewReader(c), 1, method, u, hdr...)
		}
		for _, r := range rows {
			h := map[string]string{"A": hA, "B": f.bHandle, "unknown": "h-AAAAAAAAAAAAAAAAAAAAAA"}[r.handle]
			u := l.scheme + "://" + l.addr + "/" + h + "/live"
			if r.cred.grant != "" {
				u += "?nd_grant=" + r.cred.grant
			}
			for _, m := range []string{"DESCRIBE", "OPTIONS"} {
				var hdr []string
				if r.cred.user != "" {
					code, ch := send(m, u)
					if code != 401 {
						t.Errorf("%s %s without a login: %d, want 401 with a challenge", m, strings.Split(u, "?")[0], code)
						continue
					}
					hdr = []string{"Authorization", digestAuthorization(t, ch, m, u, r.cred.user, r.cred.secret)}
				}
				code, got := send(m, u, hdr...)
				what := fmt.Sprintf("%s on %s's handle by %s (%s %s)", l.scheme, r.handle, r.cred.name, m, strings.Split(u, "?")[0])
				if code != r.want {
					t.Errorf("%s: %d %q, want %d", what, code, got.Get("X-Nanodems-Error"), r.want)
				}
				if code/100 != 2 && got.Get("X-Nanodems-Error") == "" {
					t.Errorf("%s: %d without a reason (X-Nanodems-Error)", what, code)
				}
			}
		}
	}
}
