package fuzz

import (
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nanodems/connector/internal/onvif"
)

// onvifSeed reads a fixture of internal/onvif: real answers (a camera's
// ProbeMatch, wsdd's, GetDeviceInformation and its NotAuthorized fault).
func onvifSeed(f *testing.F, name string) []byte {
	b, err := os.ReadFile("../internal/onvif/testdata/" + name)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzProbeMatches: whatever a LAN device sends in answer to a Probe, the
// parser returns an error or matches within its caps, and never panics.
func FuzzProbeMatches(f *testing.F) {
	for _, name := range []string{"onvif-probematch.xml", "wsdd-probematch.xml"} {
		b := onvifSeed(f, name)
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add(onvif.Probe("uuid:x", onvif.NetworkVideoTransmitter))
	f.Add([]byte(`<Envelope><Body><ProbeMatches><ProbeMatch><Types>a:b</Types></ProbeMatch></ProbeMatches></Body></Envelope>`))
	f.Add([]byte(`<!DOCTYPE x [<!ENTITY a "aaaa">]><Envelope>&a;</Envelope>`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		pm, err := onvif.ParseProbeMatches(b)
		if err != nil {
			return
		}
		if len(b) > onvif.MaxDatagram {
			t.Fatalf("accepted %d bytes", len(b))
		}
		if len(pm.Matches) > 32 || len(pm.RelatesTo) > 512 {
			t.Fatalf("%d matches, RelatesTo of %d bytes", len(pm.Matches), len(pm.RelatesTo))
		}
		for _, m := range pm.Matches {
			for _, l := range [][]string{m.Types, m.Scopes, m.XAddrs} {
				if len(l) > 32 {
					t.Fatalf("a list of %d items", len(l))
				}
				for _, s := range l {
					if len(s) > 512 || strings.ContainsAny(s, " \t\n") {
						t.Fatalf("item %q", s)
					}
				}
			}
			sc := onvif.ParseScopes(m.Scopes)
			for _, s := range []string{sc.Name, sc.Hardware, sc.Manufacturer} {
				if len(s) > 512 || !utf8.ValidString(s) {
					t.Fatalf("scope value %q", s)
				}
			}
			for _, x := range onvif.ParseXAddrs(m.XAddrs) {
				if x.Port < 1 || x.Port > 65535 || x.Host == "" {
					t.Fatalf("xaddr %+v", x)
				}
			}
		}
	})
}

// FuzzDeviceInformation: a GetDeviceInformation answer is parsed or
// refused, its fields within their caps.
func FuzzDeviceInformation(f *testing.F) {
	for _, name := range []string{"deviceinfo.xml", "deviceinfo-notauthorized.xml"} {
		b := onvifSeed(f, name)
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte(`<Envelope><Body><Fault><faultcode>x</faultcode></Fault></Body></Envelope>`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := onvif.ParseDeviceInformation(b)
		if err != nil {
			return
		}
		for _, s := range []string{info.Manufacturer, info.Model, info.FirmwareVersion, info.SerialNumber, info.HardwareID} {
			if len(s) > 512 {
				t.Fatalf("field of %d bytes", len(s))
			}
		}
	})
}

// FuzzMediaAnswers: GetServices, GetCapabilities, GetProfiles and
// GetStreamUri answers are parsed or refused, their lists and strings
// within their caps, and a stream URI the parser keeps gives a valid
// port or an error.
func FuzzMediaAnswers(f *testing.F) {
	for _, name := range []string{"services.xml", "capabilities.xml", "profiles.xml", "streamuri.xml", "deviceinfo-notauthorized.xml"} {
		b := onvifSeed(f, name)
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte(`<Envelope><Body><GetStreamUriResponse><MediaUri><Uri>rtsp://[::1]:99999/x</Uri></MediaUri></GetStreamUriResponse></Body></Envelope>`))
	f.Add([]byte(`<Envelope><Body><GetProfilesResponse><Profiles token=""/></GetProfilesResponse></Body></Envelope>`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		within := func(what string, s string) {
			if len(s) > 512 {
				t.Fatalf("%s of %d bytes", what, len(s))
			}
		}
		if svcs, err := onvif.ParseServices(b); err == nil {
			if len(svcs) > 32 {
				t.Fatalf("%d services", len(svcs))
			}
			for _, s := range svcs {
				within("namespace", s.Namespace)
				within("XAddr", s.XAddr)
			}
			within("media XAddr", onvif.MediaXAddr(svcs))
		}
		if x, err := onvif.ParseCapabilities(b); err == nil {
			within("media XAddr", x)
		}
		if ps, err := onvif.ParseProfiles(b); err == nil {
			if len(ps) > 32 {
				t.Fatalf("%d profiles", len(ps))
			}
			for _, p := range ps {
				if p == "" {
					t.Fatal("an empty profile token")
				}
				within("profile token", p)
			}
		}
		if uri, err := onvif.ParseStreamURI(b); err == nil {
			within("stream URI", uri)
			if host, port, err := onvif.RTSPAddr(uri); err == nil && (host == "" || port < 1 || port > 65535) {
				t.Fatalf("RTSPAddr(%q) = %q %d", uri, host, port)
			}
		}
	})
}
