package agent

import (
	"context"
	"errors"
	"net/http"
	"net/netip"

	"github.com/nanodems/connector/internal/onvif"
)

// mediaPorts asks the device service at service where the media service
// is (GetServices, or GetCapabilities on a device that predates it) and,
// where the device answers without credentials, the RTSP URI of its first
// profile (GetProfiles, GetStreamUri). It returns the media service's
// port and the RTSP port, each only when it is on host: an address
// elsewhere is neither called nor added. A device that answers none of
// it gives no ports; the step never fails discovery.
func (a *Agent) mediaPorts(ctx context.Context, client *http.Client, service string, host netip.Addr) []int {
	ctx, cancel := context.WithTimeout(ctx, mediaTimeout)
	defer cancel()
	onHost := func(h string) bool {
		ip, err := netip.ParseAddr(h)
		return err == nil && ip.Unmap() == host
	}
	media, err := a.mediaXAddr(ctx, client, service)
	if err != nil {
		a.log.Info("ONVIF media service", "device", host, "err", err)
		return nil
	}
	xs := onvif.ParseXAddrs([]string{media})
	if len(xs) == 0 || !onHost(xs[0].Host) {
		return nil
	}
	ports := []int{xs[0].Port}
	body, err := soapCall(ctx, client, xs[0].URL, onvif.GetProfilesAction, []byte(onvif.GetProfiles))
	var profiles []string
	if err == nil {
		profiles, err = onvif.ParseProfiles(body)
	}
	if err != nil || len(profiles) == 0 {
		if err != nil && !errors.Is(err, onvif.ErrNeedsLogin) {
			a.log.Info("ONVIF GetProfiles", "device", host, "err", err)
		}
		return ports
	}
	body, err = soapCall(ctx, client, xs[0].URL, onvif.GetStreamURIAction, onvif.GetStreamURI(profiles[0]))
	var uri string
	if err == nil {
		uri, err = onvif.ParseStreamURI(body)
	}
	if err != nil {
		if !errors.Is(err, onvif.ErrNeedsLogin) {
			a.log.Info("ONVIF GetStreamUri", "device", host, "err", err)
		}
		return ports
	}
	h, p, err := onvif.RTSPAddr(uri)
	if err != nil {
		a.log.Info("ONVIF stream URI", "device", host, "err", err)
		return ports
	}
	if onHost(h) && p != ports[0] {
		ports = append(ports, p)
	}
	return ports
}

// mediaXAddr is the media service's XAddr: GetServices first (ONVIF 2.0
// on), GetCapabilities when the device does not answer that.
func (a *Agent) mediaXAddr(ctx context.Context, client *http.Client, service string) (string, error) {
	body, err := soapCall(ctx, client, service, onvif.GetServicesAction, []byte(onvif.GetServices))
	var x string
	if err == nil {
		var svcs []onvif.Service
		if svcs, err = onvif.ParseServices(body); err == nil {
			if x = onvif.MediaXAddr(svcs); x != "" {
				return x, nil
			}
		}
	}
	if ctx.Err() != nil {
		return "", err
	}
	body, err2 := soapCall(ctx, client, service, onvif.GetCapabilitiesAction, []byte(onvif.GetCapabilities))
	if err2 == nil {
		x, err2 = onvif.ParseCapabilities(body)
	}
	if err2 != nil {
		return "", errors.Join(err, err2)
	}
	if x == "" {
		return "", errors.New("the device names no media service")
	}
	return x, nil
}
