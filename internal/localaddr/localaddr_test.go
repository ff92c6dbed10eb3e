package localaddr

import (
	"net/netip"
	"testing"
)

func TestAddr(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1":          Loopback,
		"127.255.0.9":        Loopback,
		"::1":                Loopback,
		"::ffff:127.0.0.1":   Loopback,
		"169.254.169.254":    Metadata,
		"fd00:ec2::254":      Metadata,
		"169.254.1.2":        LinkLocal,
		"fe80::1":            LinkLocal,
		"fe80::1%eth0":       LinkLocal,
		"febf::1":            LinkLocal,
		"0.0.0.0":            Unspecified,
		"0.1.2.3":            Unspecified,
		"::":                 Unspecified,
		"224.0.0.1":          Multicast,
		"ff02::1":            Multicast,
		"255.255.255.255":    Broadcast,
		"10.0.0.9":           "",
		"192.168.1.64":       "",
		"fd00:ec2::253":      "",
		"2001:db8::1":        "",
		"::ffff:192.168.1.2": "",
	} {
		if got := Addr(netip.MustParseAddr(in)); got != want {
			t.Errorf("Addr(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestHost(t *testing.T) {
	for in, want := range map[string]string{
		"localhost":           Loopback,
		"LocalHost.":          Loopback,
		"cam.localhost":       Loopback,
		"127.0.0.1":           Loopback,
		"169.254.169.254":     Metadata,
		"camera.local":        "",
		"localhost.example":   "",
		"10.0.0.9":            "",
		"not-an-ip-127.0.0.1": "",
	} {
		if got := Host(in); got != want {
			t.Errorf("Host(%q) = %q, want %q", in, got, want)
		}
	}
}
