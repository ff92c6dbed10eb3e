package relay_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/testwait"
	"github.com/nanodems/connector/mux"
)

type handleRow struct {
	Handle   string `json:"handle"`
	DeviceID string `json:"device_id"`
	Port     int    `json:"port"`
	Replaces string `json:"replaces"`
}

// deviceHandles lists a device's handles through the API.
func deviceHandles(t *testing.T, d *demo.Demo, deviceID string) map[int]string {
	t.Helper()
	var out struct {
		Items []handleRow `json:"items"`
	}
	must(t, d.API.Do(context.Background(), "GET", "/api/devices/"+deviceID+"/handles", nil, &out, demo.Bearer(d.Info.Token)))
	m := map[int]string{}
	for _, h := range out.Items {
		if h.DeviceID != deviceID {
			t.Fatalf("handle %s of device %s listed for %s", h.Handle, h.DeviceID, deviceID)
		}
		m[h.Port] = h.Handle
	}
	return m
}

// Rotating a handle gives the device port a new one; the old one answers
// 404 at once on /api/tunnel, /c/ and RTSP, the tunnels open on it (a
// WebSocket tunnel, a /c/ stream, an RTSP session, a CLI mux stream) are
// cut, and the CLI's address reaches the port through the new handle.
// Revoking a handle leaves the port without one. Both are audited.
func TestHandleRotateAndRevoke(t *testing.T) {
	d := startRevokeDemo(t)
	ctx := context.Background()
	route, err := d.Relay.Store().ResolveHandle(ctx, d.Info.EchoHandle)
	must(t, err)
	hs := deviceHandles(t, d.Demo, route.DeviceID)
	if hs[route.Port] != d.Info.EchoHandle || len(hs) < 2 {
		t.Fatalf("device %s handles %v, want %s on port %d and the web port's", route.DeviceID, hs, d.Info.EchoHandle, route.Port)
	}

	tun, err := cli.DialTunnel(ctx, operator(d.Demo), d.Info.EchoHandle)
	must(t, err)
	defer tun.Close()
	tunR := echoTunnel(t, "WebSocket tunnel on the old handle", tun)
	cs := mintCLI(t, d.Demo)
	m := dialMux(t, d.Demo, cs.Token)
	st, err := m.open("127.0.0.2", uint16(route.Port))
	must(t, err)
	defer st.Close()
	ms := mux.NewStream(st)
	muxR := startReader("CLI mux stream on the old handle", ms)
	_, err = ms.Write([]byte("hello"))
	must(t, err)
	muxR.waitBytes(t, 5)

	var rot handleRow
	start := time.Now()
	must(t, d.API.Do(ctx, "POST", "/api/handles/"+d.Info.EchoHandle+"/rotate", nil, &rot, demo.Bearer(d.Info.Token)))
	for _, rd := range []*reader{tunR, muxR} {
		if err := testwait.Until(time.Until(start.Add(revokeBound)), readerEnded(rd)); err != nil {
			t.Fatalf("not cut within %v of the rotation: %v", revokeBound, err)
		}
		t.Logf("%s cut %v after the rotation", rd.name, rd.at.Sub(start).Round(time.Millisecond))
	}
	if rot.Replaces != d.Info.EchoHandle || rot.Handle == "" || rot.Handle == d.Info.EchoHandle || rot.Port != route.Port || rot.DeviceID != route.DeviceID {
		t.Fatalf("rotate answered %+v", rot)
	}
	if got := deviceHandles(t, d.Demo, route.DeviceID)[route.Port]; got != rot.Handle {
		t.Fatalf("port %d lists handle %s after the rotation, want %s", route.Port, got, rot.Handle)
	}
	_, err = cli.DialTunnel(ctx, operator(d.Demo), d.Info.EchoHandle)
	wantRelayError(t, err, 404, "unknown or revoked handle")
	nu, err := cli.DialTunnel(ctx, operator(d.Demo), rot.Handle)
	must(t, err)
	defer nu.Close()
	echoTunnel(t, "WebSocket tunnel on the new handle", nu)
	st2, err := m.open("127.0.0.2", uint16(route.Port))
	must(t, err)
	st2.Close()
	waitAuditDetail(t, d.Demo, "handle.rotate", d.Info.EchoHandle, "new handle "+rot.Handle+"; tunnels closed: 2")

	// The web port: an open /c/ stream and an RTSP session on the camera
	// are cut by the rotation of theirs, and the old handle is a 404.
	client := operator(d.Demo).HTTPClient()
	defer client.CloseIdleConnections()
	bearer := http.Header{"Authorization": {"Bearer " + d.Info.Token}}
	streamR := proxyStream(t, d.Demo, "/c/ stream on the old handle", client, bearer)
	grant := mintRTSP(t, d.Demo, demo.Bearer(d.Info.Token), d.Info.RTSPHandle, "/stream", 0)
	p := rtspPull(t, grant, gortsplib.ProtocolTCP, gortsplib.TunnelNone)
	p.wait(t, 5, 10*time.Second)
	start = time.Now()
	must(t, d.API.Do(ctx, "POST", "/api/handles/"+d.Info.HTTPHandle+"/rotate", nil, &rot, demo.Bearer(d.Info.Token)))
	must(t, d.API.Do(ctx, "DELETE", "/api/handles/"+d.Info.RTSPHandle, nil, nil, demo.Bearer(d.Info.Token)))
	if err := testwait.Until(time.Until(start.Add(revokeBound)), readerEnded(streamR)); err != nil {
		t.Fatalf("not cut within %v of the rotation: %v", revokeBound, err)
	}
	if err := testwait.Until(time.Until(start.Add(revokeBound)), func() error {
		if _, stopped := p.err.Load().(error); !stopped {
			return errStillPlaying
		}
		return nil
	}); err != nil {
		t.Fatalf("RTSP session on a revoked handle: %v", err)
	}
	resp, _ := get(t, client, d.Info.RelayURL+"/c/"+d.Info.HTTPHandle+"/", "Authorization", "Bearer "+d.Info.Token)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("/c/ on a rotated handle: %d, want 404", resp.StatusCode)
	}
	resp, _ = get(t, client, d.Info.RelayURL+"/c/"+rot.Handle+"/", "Authorization", "Bearer "+d.Info.Token)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/c/ on the new handle: %d, want 200", resp.StatusCode)
	}
	if _, err := rtspPullErr(grant, gortsplib.ProtocolTCP, gortsplib.TunnelNone); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("RTSP on a revoked handle: %v, want 404", err)
	}
	if hs := deviceHandles(t, d.Demo, mustDeviceOf(t, d, d.Info.RTSPHandle)); len(hs) != 0 {
		t.Fatalf("RTSP camera still lists handles %v after its one was revoked", hs)
	}
	waitAuditDetail(t, d.Demo, "handle.revoke", d.Info.RTSPHandle, "tunnels closed: 1")

	// Revoked or unknown handles are 404 to rotate and revoke again.
	for _, c := range []struct{ method, path string }{
		{"POST", "/api/handles/" + d.Info.EchoHandle + "/rotate"},
		{"DELETE", "/api/handles/" + d.Info.RTSPHandle},
		{"DELETE", "/api/handles/nope"},
	} {
		err := d.API.Do(ctx, c.method, c.path, nil, nil, demo.Bearer(d.Info.Token))
		if err == nil || !strings.Contains(err.Error(), "404") {
			t.Errorf("%s %s: %v, want 404", c.method, c.path, err)
		}
	}
}

var errStillPlaying = errString("still playing")

type errString string

func (e errString) Error() string { return string(e) }

func mustDeviceOf(t *testing.T, d *revokeDemo, h string) string {
	t.Helper()
	r, err := d.Relay.Store().ResolveHandle(context.Background(), h)
	must(t, err)
	return r.DeviceID
}
