package relay

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// crossOrigin tells why r, a request a browser may have sent on its own
// with the user's cookie, did not come from a page of the origin it was
// sent to (r.Host: the relay's, or in subdomain mode the camera's own);
// nil when it did, or when nothing in it says a browser sent it.
//
// Sec-Fetch-Site is the browser's own word and cannot be set by a page:
// anything but "same-origin" (or "none", typed into the address bar) is
// refused, "same-site" too, since in subdomain mode every camera is
// same-site with the relay and with every other camera. Origin must then
// name this host, as coder/websocket requires of an upgrade: passing here
// means the library's own check, made after the device was dialled,
// cannot refuse. A request with neither header is no browser's (browsers
// send Origin with every upgrade and every unsafe method) and passes.
func crossOrigin(r *http.Request) error {
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "", "same-origin", "none":
	default:
		return fmt.Errorf("%w: cross-origin request refused: Sec-Fetch-Site is %q; use the page this relay serves", errForbidden, site)
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	if u, err := url.Parse(origin); err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
		return fmt.Errorf("%w: cross-origin request refused: Origin %q is not this host (%s)", errForbidden, origin, r.Host)
	}
	return nil
}

// unsafeMethod: a method that may change something, so a cross-site page
// must not be able to send it with the user's cookie.
func unsafeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}

// ambientCredential reports whether r is authenticated by something a
// browser attaches on its own to a request another site's page makes: a
// cookie, or Basic credentials it has cached. A Bearer token or the admin
// key header can only come from a program that holds them.
func ambientCredential(r *http.Request, byHeader bool) bool {
	if !byHeader {
		return true // the session cookie
	}
	return r.Header.Get("X-Admin-Api-Key") == "" && !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ")
}

// checkBrowserOrigin is the browser proxy's rule: an upgrade (a WebSocket
// to the camera, whatever its credential, as on /api/tunnel) and an unsafe
// method on an ambient credential must come from the host's own origin.
// It runs before the device is dialled.
func checkBrowserOrigin(r *http.Request, byHeader bool) error {
	if isUpgrade(r) || (unsafeMethod(r.Method) && ambientCredential(r, byHeader)) {
		return crossOrigin(r)
	}
	return nil
}
