// Package rewrite maps a camera's view of URLs onto the relay's path
// prefix /c/{handle}/ and back, for the browser proxy.
//
// Camera UIs are written for the LAN: absolute paths (/doc/page/login.asp),
// absolute URLs naming the camera's own address, cookies scoped to /, and
// meta refreshes. Behind /c/{handle}/ each of those would escape the
// prefix, so the proxy rewrites the headers that carry them. Bodies are not
// rewritten (JavaScript builds URLs at run time; no rewriting can follow
// it): requests that escape the prefix are routed back by Referer or by a
// per-handle cookie instead (Route), and the subdomain mode
// ({handle}.<apps domain>) needs no rewriting at all. Every function here
// is pure and fuzzed (fuzz/rewrite_fuzz_test.go).
package rewrite

import (
	"net/url"
	"strings"
)

// Prefix is the path prefix of a handle: "/c/h-…/" without the trailing
// slash.
func Prefix(handle string) string { return "/c/" + handle }

// Location rewrites a Location or Content-Location value the camera sent.
// Absolute paths get the prefix; absolute URLs that name the camera itself
// (any of cameraHosts, compared case-insensitively with or without port)
// become prefixed paths; relative references and other sites are left as
// they are.
func Location(v, prefix string, cameraHosts []string) string {
	if v == "" {
		return v
	}
	if strings.HasPrefix(v, "/") && !strings.HasPrefix(v, "//") {
		if strings.HasPrefix(v, prefix+"/") || v == prefix {
			return v // already ours (a camera echoing our own path)
		}
		return prefix + v
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || !isCamera(u.Host, cameraHosts) {
		return v
	}
	if u.Scheme != "" && u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "ws" && u.Scheme != "wss" {
		return v
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	out := prefix + path
	if u.RawQuery != "" {
		out += "?" + u.RawQuery
	}
	if u.Fragment != "" {
		out += "#" + u.EscapedFragment()
	}
	return out
}

func isCamera(host string, cameraHosts []string) bool {
	h := strings.ToLower(host)
	for _, c := range cameraHosts {
		c = strings.ToLower(c)
		if h == c || strings.HasPrefix(h, c+":") || strings.HasPrefix(c, h+":") {
			return true
		}
	}
	return false
}

// Refresh rewrites a Refresh header ("5; url=/next") the same way as
// Location.
func Refresh(v, prefix string, cameraHosts []string) string {
	semi := strings.IndexByte(v, ';')
	if semi < 0 {
		return v
	}
	rest := strings.TrimLeft(v[semi+1:], " \t")
	if len(rest) < 4 || !strings.EqualFold(rest[:4], "url=") {
		return v
	}
	target := strings.Trim(rest[4:], `'" `)
	return v[:semi] + "; url=" + Location(target, prefix, cameraHosts)
}

// SetCookie rewrites a Set-Cookie value: Path=/x becomes Path=prefix/x (a
// missing Path becomes prefix/, since the browser would otherwise scope the
// cookie to the request's directory under the prefix, or to / outside it),
// and Domain is dropped because the camera's domain is not the relay's.
// Cookies of two cameras therefore never mix, and a camera never sees the
// relay's own cookies. With secure (the browser reached the relay over
// TLS), the cookie is marked Secure: a camera on plain HTTP does not know
// its session now crosses the internet.
func SetCookie(v, prefix string, secure bool) string {
	parts := strings.Split(v, ";")
	hasPath, hasSecure := false, false
	out := parts[:1]
	for _, p := range parts[1:] {
		name, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "domain":
			continue
		case "secure":
			hasSecure = true
		case "path":
			hasPath = true
			val = strings.TrimSpace(val)
			if !strings.HasPrefix(val, "/") {
				val = "/" + val
			}
			if !strings.HasPrefix(val, prefix+"/") && val != prefix {
				val = prefix + val
			}
			p = " Path=" + val
		}
		out = append(out, p)
	}
	if !hasPath {
		out = append(out, " Path="+prefix+"/")
	}
	if secure && !hasSecure {
		out = append(out, " Secure")
	}
	return strings.Join(out, ";")
}

// HandleFromPath returns the handle of a /c/{handle}/… path, or "".
func HandleFromPath(p string) string {
	rest, ok := strings.CutPrefix(p, "/c/")
	if !ok {
		return ""
	}
	h, _, _ := strings.Cut(rest, "/")
	return h
}

// HandleFromReferer returns the handle of the page that made a request,
// if that page was under /c/{handle}/ on the relay itself (relayHost).
func HandleFromReferer(referer, relayHost string) string {
	if referer == "" {
		return ""
	}
	u, err := url.Parse(referer)
	if err != nil || !strings.EqualFold(u.Host, relayHost) {
		return ""
	}
	return HandleFromPath(u.Path)
}

// StripPrefix returns the camera's path for a path under prefix.
func StripPrefix(p, prefix string) string {
	rest := strings.TrimPrefix(p, prefix)
	if rest == "" || rest[0] != '/' {
		rest = "/" + rest
	}
	return rest
}
