package onvif_test

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/nanodems/connector/internal/onvif"
)

// wsddUUID is the endpoint id TestWSDDProbeMatch gives wsdd, and so the
// one in its captured answer.
const wsddUUID = "2f6a3c1e-8d4b-4e5f-9a7c-0b1d2e3f4a5b"

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestParseProbeMatchFixtures reads a camera's ProbeMatch (other
// prefixes than ours, an IPv6 XAddr) and the one wsdd sent when
// TestWSDDProbeMatch ran it.
func TestParseProbeMatchFixtures(t *testing.T) {
	pm, err := onvif.ParseProbeMatches(read(t, "onvif-probematch.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if pm.RelatesTo != "uuid:11111111-2222-3333-4444-555555555555" || len(pm.Matches) != 1 {
		t.Fatalf("%+v", pm)
	}
	m := pm.Matches[0]
	if m.Address != "urn:uuid:a1b2c3d4-0000-1111-2222-bcbac1c2c3c4" || !onvif.HasType(m.Types, "NetworkVideoTransmitter") || len(m.Scopes) != 6 || len(m.XAddrs) != 2 {
		t.Errorf("%+v", m)
	}
	if sc := onvif.ParseScopes(m.Scopes); sc != (onvif.Scopes{Name: "Parking Lot East", Hardware: "DS-2CD2143G2-I"}) {
		t.Errorf("scopes %+v", sc)
	}
	xs := onvif.ParseXAddrs(m.XAddrs)
	if len(xs) != 2 || xs[0].Host != "192.168.1.64" || xs[0].Port != 80 || xs[1].Host != "fe80::4619:b6ff:fe01:2345" {
		t.Errorf("xaddrs %+v", xs)
	}

	pm, err = onvif.ParseProbeMatches(read(t, "wsdd-probematch.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(pm.Matches) != 1 || pm.Matches[0].Address != "urn:uuid:"+wsddUUID || !slices.Equal(pm.Matches[0].Types, []string{"wsdp:Device", "pub:Computer"}) || pm.Matches[0].XAddrs != nil {
		t.Errorf("wsdd: %+v", pm)
	}
}

func TestParseDeviceInformation(t *testing.T) {
	info, err := onvif.ParseDeviceInformation(read(t, "deviceinfo.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Manufacturer != "HIKVISION" || info.Model != "DS-2CD2143G2-I" || info.HardwareID != "88" {
		t.Errorf("%+v", info)
	}
	_, err = onvif.ParseDeviceInformation(read(t, "deviceinfo-notauthorized.xml"))
	if !errors.Is(err, onvif.ErrNeedsLogin) {
		t.Errorf("fault: %v, want ErrNeedsLogin", err)
	}
}

func TestParsersRefuse(t *testing.T) {
	for name, in := range map[string]string{
		"not XML":        "garbage",
		"other root":     `<Probe><Body/></Probe>`,
		"no matches":     `<Envelope><Body/></Envelope>`,
		"truncated":      string(read(t, "onvif-probematch.xml"))[:300],
		"over the limit": `<Envelope>` + strings.Repeat(" ", onvif.MaxDatagram) + `</Envelope>`,
	} {
		if _, err := onvif.ParseProbeMatches([]byte(in)); err == nil {
			t.Errorf("ParseProbeMatches(%s) accepted", name)
		}
		if _, err := onvif.ParseDeviceInformation([]byte(in)); err == nil {
			t.Errorf("ParseDeviceInformation(%s) accepted", name)
		}
	}
	// Lists and strings are cut, not kept whole.
	long := `<e:Envelope xmlns:e="x"><e:Body><ProbeMatches>` + strings.Repeat(`<ProbeMatch><Scopes>`+strings.Repeat("onvif://www.onvif.org/name/"+strings.Repeat("A", 600)+" ", 20)+`</Scopes></ProbeMatch>`, 1) + `</ProbeMatches></e:Body></e:Envelope>`
	pm, err := onvif.ParseProbeMatches([]byte(long))
	if err != nil {
		t.Fatal(err)
	}
	if sc := pm.Matches[0].Scopes; len(sc) != 20 || len(sc[0]) != 512 {
		t.Errorf("kept %d scopes of %d bytes", len(sc), len(sc[0]))
	}
}
