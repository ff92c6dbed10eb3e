// Package fleet is the end-to-end check of several relays as one
// installation: three nanodems-relay processes on one real PostgreSQL,
// nanodems-agent processes at two sites, and what docs/ha.md promises of
// them (bridging, kill -9 failover, cross-relay revocation, TTL locks, the
// internal CA's separation), measured. It has tests only.
package fleet
