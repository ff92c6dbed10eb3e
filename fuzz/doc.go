// Package fuzz holds the fuzz targets of every parser that reads network
// input: tunnel headers and statuses, control messages, the in-band stream
// framing of mux.Stream, handles, and the WebSocket byte stream of wsconn;
// the ONVIF answers a LAN device sends an agent's discovery
// (ProbeMatches, GetDeviceInformation) and bulk add's address ranges.
//
// The package has no code of its own; the targets live in *_test.go files.
// `go test ./fuzz` (part of `go test ./...`) runs each target over its seed
// corpus (f.Add plus testdata/fuzz/FuzzXxx, where go test writes crashers
// worth keeping). CI then runs fuzz/run.sh, which fuzzes every target for
// FUZZTIME (default 10s) one after another and fails on the first crash:
//
//	FUZZTIME=5s bash fuzz/run.sh
package fuzz
