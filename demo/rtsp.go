package demo

import (
	"context"
	"fmt"
	"strconv"

	"github.com/nanodems/connector/rtsp/rtsptest"
)

// startRTSPCamera runs a synthetic H.264 camera (25 fps, Digest login
// CameraUser/CameraPassword) and registers it as a device of its own,
// with its login stored so the gateway answers the camera's challenge.
// Off by default: tests that want one start their own, and every demo
// would otherwise spend CPU on a 25 fps feed nobody watches.
func (d *Demo) startRTSPCamera(ctx context.Context) error {
	cam, err := rtsptest.Start(rtsptest.Options{User: CameraUser, Pass: CameraPassword})
	if err != nil {
		return fmt.Errorf("demo: RTSP camera: %w", err)
	}
	d.RTSPCamera = cam
	var dev struct {
		Handles map[string]string `json:"handles"`
	}
	body := map[string]any{
		"host": "127.0.0.1", "ports": []int{cam.Port}, "label": "Demo RTSP camera", "manufacturer": "nanodems", "model": "synthetic H.264",
		"username": CameraUser, "password": CameraPassword,
	}
	if err := d.API.Do(ctx, "POST", "/api/sites/"+d.Info.SiteID+"/devices", body, &dev, Bearer(d.Info.Token)); err != nil {
		return fmt.Errorf("demo: add RTSP camera: %w", err)
	}
	d.Info.RTSPHandle = dev.Handles[strconv.Itoa(cam.Port)]
	return nil
}

// mintRTSPURL asks the API for the player URL of the RTSP camera, as an
// operator would (a grant valid for the API's default lifetime).
func (d *Demo) mintRTSPURL(ctx context.Context) error {
	var out struct {
		URL string `json:"url"`
	}
	if err := d.API.Do(ctx, "POST", "/api/handles/"+d.Info.RTSPHandle+"/rtsp-url", map[string]any{"path": "/stream"}, &out, Bearer(d.Info.Token)); err != nil {
		return fmt.Errorf("demo: mint RTSP URL: %w", err)
	}
	d.Info.RTSPURL = out.URL
	return nil
}
