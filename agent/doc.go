// Package agent is the site-side bridge: it enrolls once with a relay, then
// keeps one TLS 1.3 + smux v2 session open, and dials LAN targets for the
// tunnels the relay opens — but only targets its allowlist holds, whatever
// the relay asks, so a compromised relay cannot sweep the site's LAN.
package agent
