package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/nanodems/connector/internal/onvif"
	"github.com/nanodems/connector/mux"
)

// Discovery: an ONVIF WS-Discovery Probe for NetworkVideoTransmitter
// multicast on every up, multicast-capable interface with a private or
// link-local IPv4 address; the ProbeMatches that come back within the
// window; then, for each device, GetDeviceInformation on its device
// service (bounded concurrency, short timeout, no credentials: a device
// that wants them is reported as needing a login), and the ports of its
// media service and of its first profile's RTSP stream where it tells
// them without credentials.

const (
	discoverWindow    = 3 * time.Second
	discoverWindowMax = 10 * time.Second
	// deviceInfoTimeout bounds one GetDeviceInformation, connect to body.
	deviceInfoTimeout = 3 * time.Second
	// mediaTimeout bounds the whole media step of one device (where its
	// media service is, its first profile, that profile's RTSP URI).
	mediaTimeout = 5 * time.Second
	// deviceInfoWorkers bounds the GetDeviceInformation calls at once.
	deviceInfoWorkers = 8
	// probeRepeats: WS-Discovery runs over UDP; the Probe is sent twice,
	// apart, so one lost datagram does not hide the LAN.
	probeRepeats = 2
	probeGap     = 150 * time.Millisecond
)

// discovered is one device's ProbeMatch, with the interface it answered
// on.
type discovered struct {
	match onvif.ProbeMatch
	host  netip.Addr // where it answered from
	on    lanIface
}

func (a *Agent) discover(ctx context.Context, req mux.DiscoverRequest, rep *reporter) error {
	window := discoverWindow
	if req.WindowMillis > 0 {
		window = min(time.Duration(req.WindowMillis)*time.Millisecond, discoverWindowMax)
	}
	ifs, err := a.lanInterfaces()
	if err != nil {
		return err
	}
	ifs = slices.DeleteFunc(ifs, func(li lanIface) bool { return !li.multicast })
	if len(ifs) == 0 {
		return errors.New("no up, multicast-capable interface with a private or link-local IPv4 address: nothing to discover on")
	}
	msgID := "uuid:" + rand.Text()
	probe := onvif.Probe(msgID, onvif.NetworkVideoTransmitter)

	wctx, cancel := context.WithTimeout(ctx, window)
	defer cancel()
	found := make(chan discovered)
	var wg sync.WaitGroup
	var errs []error
	var emu sync.Mutex
	for _, li := range ifs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.probeInterface(wctx, li, msgID, probe, found); err != nil {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
		}()
	}
	go func() {
		wg.Wait()
		close(found)
	}()

	// One device answers once per Probe and may answer on two
	// interfaces: keep the first answer of each endpoint.
	client := a.deviceInfoClient()
	defer client.CloseIdleConnections()
	sem := make(chan struct{}, deviceInfoWorkers)
	var infos sync.WaitGroup
	seen := map[string]bool{}
	n := 0
	for d := range found {
		key := d.match.Address
		if key == "" {
			key = d.host.String()
		}
		if seen[key] || len(seen) >= mux.MaxRunFound {
			continue
		}
		seen[key] = true
		n++
		sem <- struct{}{}
		infos.Add(1)
		go func() {
			defer infos.Done()
			defer func() { <-sem }()
			rep.add(a.describe(ctx, client, d))
		}()
		rep.progress(n, 0)
	}
	infos.Wait()
	if n == 0 && len(errs) == len(ifs) {
		return fmt.Errorf("discovery failed on every interface: %w", errors.Join(errs...))
	}
	return nil
}

// probeInterface multicasts the Probe out of li and sends every matching
// answer to found until ctx ends.
func (a *Agent) probeInterface(ctx context.Context, li lanIface, msgID string, probe []byte, found chan<- discovered) error {
	var conn *net.UDPConn
	err := a.onLAN(func() error {
		var err error
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: li.addrs[0].AsSlice()})
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: listen: %w", li.iface.Name, err)
	}
	defer conn.Close()
	pc := ipv4.NewPacketConn(conn)
	if err := pc.SetMulticastInterface(&li.iface); err != nil {
		return fmt.Errorf("%s: multicast interface: %w", li.iface.Name, err)
	}
	pc.SetMulticastTTL(1) // WS-Discovery stays on the link
	dst, err := net.ResolveUDPAddr("udp4", onvif.MulticastAddr)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	sent := make(chan struct{})
	defer func() { <-sent }() // runs before conn.Close: the sender never writes to a closed socket
	sendCtx, cancelSend := context.WithCancel(ctx)
	defer cancelSend()
	go func() {
		defer close(sent)
		for i := range probeRepeats {
			if i > 0 {
				select {
				case <-sendCtx.Done():
					return
				case <-time.After(probeGap):
				}
			}
			if _, err := conn.WriteToUDP(probe, dst); err != nil {
				a.log.Warn("discovery probe", "interface", li.iface.Name, "err", err)
			}
		}
	}()
	// One byte more than a datagram may have: a read that fills the
	// buffer was cut, and is dropped.
	buf := make([]byte, onvif.MaxDatagram+1)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%s: read: %w", li.iface.Name, err)
		}
		if n > onvif.MaxDatagram {
			continue
		}
		pm, err := onvif.ParseProbeMatches(buf[:n])
		if err != nil || pm.RelatesTo != "" && pm.RelatesTo != msgID {
			continue // not an answer to this Probe: another tool's traffic, or garbage
		}
		for _, m := range pm.Matches {
			select {
			case found <- discovered{match: m, host: from.Addr().Unmap(), on: li}:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// deviceInfoClient is the HTTP client of GetDeviceInformation: short
// timeouts, no keep-alive (one call per device), dials made on the LAN.
func (a *Agent) deviceInfoClient() *http.Client {
	d := &net.Dialer{Timeout: deviceInfoTimeout}
	return &http.Client{
		Timeout: deviceInfoTimeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				return a.lanDial(ctx, d, addr)
			},
			DisableKeepAlives:      true,
			ResponseHeaderTimeout:  deviceInfoTimeout,
			MaxResponseHeaderBytes: 16 << 10,
		},
		// A device service does not redirect; following one would leave
		// the device.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// describe turns a ProbeMatch into a Found: the host it answered from, the
// ports of its XAddrs, what its scopes say, and what GetDeviceInformation
// says when the device answers it.
func (a *Agent) describe(ctx context.Context, client *http.Client, d discovered) mux.Found {
	sc := onvif.ParseScopes(d.match.Scopes)
	f := mux.Found{Host: d.host.String(), Name: sc.Name, Hardware: sc.Hardware, Manufacturer: sc.Manufacturer, Model: sc.Hardware, XAddrs: d.match.XAddrs}
	var service string
	for _, x := range onvif.ParseXAddrs(d.match.XAddrs) {
		if ip, err := netip.ParseAddr(x.Host); err != nil || ip.Unmap() != d.host {
			continue // an XAddr elsewhere than the device that answered is not called
		}
		if !slices.Contains(f.Ports, x.Port) {
			f.Ports = append(f.Ports, x.Port)
		}
		if service == "" {
			service = x.URL
		}
	}
	if service == "" {
		return f
	}
	info, err := a.deviceInformation(ctx, client, service)
	for _, p := range a.mediaPorts(ctx, client, service, d.host) {
		if !slices.Contains(f.Ports, p) {
			f.Ports = append(f.Ports, p)
		}
	}
	switch {
	case errors.Is(err, onvif.ErrNeedsLogin):
		f.NeedsLogin = true
	case err != nil:
		a.log.Info("GetDeviceInformation", "device", f.Host, "err", err)
	default:
		if info.Manufacturer != "" {
			f.Manufacturer = info.Manufacturer
		}
		if info.Model != "" {
			f.Model = info.Model
		}
	}
	return f
}

// deviceInformation calls GetDeviceInformation at url without
// credentials. A 401 (HTTP digest) or a NotAuthorized fault
// (WS-Security) wraps onvif.ErrNeedsLogin.
func (a *Agent) deviceInformation(ctx context.Context, client *http.Client, url string) (onvif.DeviceInformation, error) {
	body, err := soapCall(ctx, client, url, onvif.GetDeviceInformationAction, []byte(onvif.GetDeviceInformation))
	if err != nil {
		return onvif.DeviceInformation{}, err
	}
	return onvif.ParseDeviceInformation(body)
}

// soapCall posts one SOAP 1.2 request to url, without credentials, and
// returns the answer's body, at most onvif.MaxBody+1 bytes (so the
// parser refuses a longer one). A 401 or 403 wraps onvif.ErrNeedsLogin;
// a fault comes with status 400 or 500, so any other answer is returned
// for the parser to read.
func soapCall(ctx context.Context, client *http.Client, url, action string, request []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(request))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", onvif.SOAPContentType(action))
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return nil, fmt.Errorf("%w: HTTP %s", onvif.ErrNeedsLogin, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, onvif.MaxBody+1))
}
