// Package metrics serves a Prometheus registry on a listener of its own,
// for the relay and the agent alike: a plain http.Server with timeouts on
// every phase, so that a slow or stuck scraper holds one connection for a
// bounded time and nothing else. Each program makes its own registry
// (NewRegistry), never the process-wide default one, so that several
// relays in one test process each expose only their own series.
package metrics
