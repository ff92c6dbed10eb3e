package fuzz

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/nanodems/connector/cli"
)

// FuzzDecodePlan feeds relay answers to cli.DecodePlan, the decoder of the
// bind plan the CLI then listens on. Besides never panicking: errors wrap
// ErrBadPlan; an accepted plan has only addresses of 127.0.0.2 to
// 127.255.255.254 in canonical form, ports 1-65535, no (address, port)
// twice, printable text of bounded length, a refresh that is not negative;
// and it decodes to itself once re-encoded.
func FuzzDecodePlan(f *testing.F) {
	f.Add([]byte(`{"session_id":"cli_abc","expires_at":"2026-12-22T04:55:56Z","hard_cap_at":"2027-05-21T04:55:56Z","refresh_seconds":60,
		"entries":[{"ip":"127.0.0.2","port":80,"handle":"h-RkN3Lzm9TgD8e2Bp7Q1xWA","label":"Lobby","device_id":"dev_a","site_id":"site_a"},
		{"ip":"127.0.0.2","port":554,"handle":"h-86c2037a51fb","label":"Lobby","device_id":"dev_a","site_id":"site_a"},
		{"ip":"127.1.2.3","port":8000,"label":"NVR \u00e9\u001b[2J","device_id":"dev_b","site_id":"site_b"}]}`))
	f.Add([]byte(`{"entries":[]}`))
	f.Add([]byte(`{"entries":null,"refresh_seconds":-5}`))
	f.Add([]byte(`{"entries":[{"ip":"127.0.0.1","port":22}]}`))
	f.Add([]byte(`{"entries":[{"ip":"0.0.0.0","port":80}]}`))
	f.Add([]byte(`{"entries":[{"ip":"::ffff:127.0.0.2","port":80}]}`))
	f.Add([]byte(`{"entries":[{"ip":"127.0.0.2","port":80},{"ip":"127.0.0.2","port":80}]}`))
	f.Add([]byte(`{"entries":[{"ip":"127.0.0.2","port":65536}]}`))
	f.Add([]byte(`{"entries":[{"ip":"127.0.0.2","port":80,"label":"` + strings.Repeat("é", 300) + `"}]}`))
	f.Add([]byte("{\"entries\":[{\"ip\":\"127.0.0.2\",\"port\":80,\"label\":\"\xff\xfe\"}]}"))
	f.Add([]byte(`[1,2,3]`))
	f.Add([]byte(`{"entries":[{"ip":"127.0.0.2","port":80}]`))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := cli.DecodePlan(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, cli.ErrBadPlan) {
				t.Fatalf("error %v does not wrap ErrBadPlan", err)
			}
			return
		}
		if p.RefreshSeconds < 0 {
			t.Fatalf("refresh %d", p.RefreshSeconds)
		}
		seen := map[netip.AddrPort]bool{}
		for _, e := range p.Entries {
			a, err := netip.ParseAddr(e.IP)
			if err != nil || !a.Is4() || a.String() != e.IP || a.As4()[0] != 127 || e.IP == "127.0.0.1" || e.IP == "127.0.0.0" || e.IP == "127.255.255.255" {
				t.Fatalf("accepted address %q", e.IP)
			}
			if e.Port == 0 {
				t.Fatal("accepted port 0")
			}
			if e.Addr() != netip.AddrPortFrom(a, e.Port) || e.String() != e.Addr().String() {
				t.Fatalf("Addr %v / String %q disagree with %s:%d", e.Addr(), e.String(), e.IP, e.Port)
			}
			if seen[e.Addr()] {
				t.Fatalf("%s accepted twice", e)
			}
			seen[e.Addr()] = true
			for _, s := range []string{e.Label, e.Handle, e.DeviceID, e.SiteID} {
				if !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) || utf8.RuneCountInString(s) > 201 {
					t.Fatalf("unsafe text %q", s)
				}
			}
		}
		if !utf8.ValidString(p.SessionID) || strings.ContainsFunc(p.SessionID, unicode.IsControl) {
			t.Fatalf("unsafe session id %q", p.SessionID)
		}
		enc, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		p2, err := cli.DecodePlan(bytes.NewReader(enc))
		if err != nil {
			t.Fatalf("re-encoded plan refused: %v\n%s", err, enc)
		}
		if !reflect.DeepEqual(p2.Entries, p.Entries) && !(len(p.Entries) == 0 && len(p2.Entries) == 0) {
			t.Fatalf("re-decoded entries differ:\n%+v\n%+v", p.Entries, p2.Entries)
		}
	})
}
