package onvif_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/nanodems/connector/internal/onvif"
)

// TestParseMediaFixtures reads a camera's GetServices (media 1 and 2 on
// their own ports), GetCapabilities, GetProfiles and GetStreamUri
// answers, each with the prefixes a real device uses.
func TestParseMediaFixtures(t *testing.T) {
	svcs, err := onvif.ParseServices(read(t, "services.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 4 {
		t.Fatalf("%d services: %+v", len(svcs), svcs)
	}
	if x := onvif.MediaXAddr(svcs); x != "http://192.168.1.64:8080/onvif/Media" {
		t.Errorf("media XAddr %q: the ONVIF 1 media service comes first", x)
	}
	if x := onvif.MediaXAddr(svcs[:2]); x != "http://192.168.1.64:8081/onvif/Media2" {
		t.Errorf("media XAddr %q without media 1, want media 2's", x)
	}
	if x, err := onvif.ParseCapabilities(read(t, "capabilities.xml")); err != nil || x != "http://192.168.1.64:8080/onvif/Media" {
		t.Errorf("capabilities: %q, %v", x, err)
	}
	profiles, err := onvif.ParseProfiles(read(t, "profiles.xml"))
	if err != nil || strings.Join(profiles, " ") != "Profile_1 Profile_2" {
		t.Errorf("profiles %v, %v", profiles, err)
	}
	uri, err := onvif.ParseStreamURI(read(t, "streamuri.xml"))
	if err != nil || uri != "rtsp://192.168.1.64:8554/Streaming/Channels/101?transportmode=unicast&profile=Profile_1" {
		t.Fatalf("stream URI %q, %v", uri, err)
	}
	if host, port, err := onvif.RTSPAddr(uri); err != nil || host != "192.168.1.64" || port != 8554 {
		t.Errorf("RTSPAddr: %s %d %v", host, port, err)
	}
	if _, port, err := onvif.RTSPAddr("rtsp://10.0.0.5/live"); err != nil || port != 554 {
		t.Errorf("RTSPAddr without a port: %d %v, want 554", port, err)
	}
	for _, bad := range []string{"http://10.0.0.5/live", "rtsp:///live", "rtsp://10.0.0.5:0/", "rtsp://10.0.0.5:70000/", "::"} {
		if _, _, err := onvif.RTSPAddr(bad); err == nil {
			t.Errorf("RTSPAddr(%q) accepted", bad)
		}
	}
	// The request names the profile, escaped.
	if req := string(onvif.GetStreamURI(`a<b&"c`)); !strings.Contains(req, "<trt:ProfileToken>a&lt;b&amp;&#34;c</trt:ProfileToken>") || !strings.Contains(req, "RTP-Unicast") {
		t.Errorf("GetStreamUri request %s", req)
	}
}

func TestMediaParsersRefuse(t *testing.T) {
	notAuth := read(t, "deviceinfo-notauthorized.xml")
	parsers := map[string]func([]byte) error{
		"ParseServices":     func(b []byte) error { _, err := onvif.ParseServices(b); return err },
		"ParseCapabilities": func(b []byte) error { _, err := onvif.ParseCapabilities(b); return err },
		"ParseProfiles":     func(b []byte) error { _, err := onvif.ParseProfiles(b); return err },
		"ParseStreamURI":    func(b []byte) error { _, err := onvif.ParseStreamURI(b); return err },
	}
	for pname, parse := range parsers {
		for name, in := range map[string]string{
			"not XML":        "garbage",
			"other root":     `<Probe><Body/></Probe>`,
			"no response":    `<Envelope><Body/></Envelope>`,
			"truncated":      string(read(t, "services.xml"))[:300],
			"over the limit": `<Envelope>` + strings.Repeat(" ", onvif.MaxBody) + `</Envelope>`,
		} {
			if err := parse([]byte(in)); err == nil {
				t.Errorf("%s(%s) accepted", pname, name)
			}
		}
		if err := parse(notAuth); !errors.Is(err, onvif.ErrNeedsLogin) {
			t.Errorf("%s(NotAuthorized fault): %v, want ErrNeedsLogin", pname, err)
		}
	}
	// A device that lists a hundred services or profiles is cut to 32.
	many := `<Envelope><Body><GetServicesResponse>` + strings.Repeat(`<Service><Namespace>x</Namespace><XAddr>http://h/</XAddr></Service>`, 100) + `</GetServicesResponse></Body></Envelope>`
	if s, err := onvif.ParseServices([]byte(many)); err != nil || len(s) != 32 {
		t.Errorf("kept %d services, %v", len(s), err)
	}
	manyP := `<Envelope><Body><GetProfilesResponse>` + strings.Repeat(`<Profiles token="p"/>`, 100) + `</GetProfilesResponse></Body></Envelope>`
	if p, err := onvif.ParseProfiles([]byte(manyP)); err != nil || len(p) != 32 {
		t.Errorf("kept %d profiles, %v", len(p), err)
	}
}
