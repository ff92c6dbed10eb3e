package onvif

import (
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Scopes is what a device's ONVIF scopes say about it
// (onvif://www.onvif.org/name/…, /hardware/…, /mfr/…).
type Scopes struct {
	Name, Hardware, Manufacturer string
}

// ParseScopes reads the ONVIF scopes of a ProbeMatch; others are ignored.
func ParseScopes(scopes []string) Scopes {
	var s Scopes
	for _, sc := range scopes {
		rest, ok := strings.CutPrefix(sc, "onvif://www.onvif.org/")
		if !ok {
			continue
		}
		kind, val, ok := strings.Cut(rest, "/")
		if !ok || val == "" {
			continue
		}
		if u, err := url.PathUnescape(val); err == nil {
			val = u
		}
		val = clip(strings.TrimSpace(strings.ToValidUTF8(val, "")))
		switch strings.ToLower(kind) {
		case "name":
			s.Name = first(s.Name, val)
		case "hardware":
			s.Hardware = first(s.Hardware, val)
		case "mfr", "manufacturer":
			s.Manufacturer = first(s.Manufacturer, val)
		}
	}
	return s
}

func first(have, v string) string {
	if have != "" {
		return have
	}
	return v
}

// XAddr is the host and port of a service URL.
type XAddr struct {
	URL  string
	Host string
	Port int
}

// ParseXAddrs keeps the http and https URLs of xaddrs, with their host and
// port (the scheme's default when the URL names none).
func ParseXAddrs(xaddrs []string) []XAddr {
	var out []XAddr
	for _, x := range xaddrs {
		u, err := url.Parse(x)
		if err != nil || u.Host == "" {
			continue
		}
		port := map[string]int{"http": 80, "https": 443}[strings.ToLower(u.Scheme)]
		if port == 0 {
			continue
		}
		if p := u.Port(); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil || n < 1 || n > 65535 {
				continue
			}
			port = n
		}
		host := u.Hostname()
		if net.ParseIP(host) == nil && strings.ContainsAny(host, "/?#@[]% ") {
			continue
		}
		out = append(out, XAddr{URL: x, Host: host, Port: port})
	}
	return out
}
