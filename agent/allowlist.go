package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/nanodems/connector/internal/atomicfile"
	"github.com/nanodems/connector/mux"
)

// Allowlist is the set of (host, port) targets this agent may dial. It is
// kept on disk, so an agent that restarts while the relay is unreachable
// still serves exactly what it served before, and it only moves forward:
// a push older than the held version is refused.
type Allowlist struct {
	path string

	mu      sync.RWMutex
	version int64
	set     map[mux.Target]struct{}
}

// ErrStaleAllowlist is returned by Apply for a push older than the one held.
var ErrStaleAllowlist = errors.New("stale allowlist")

// LoadAllowlist reads the list kept at path; a missing file is an empty
// list at version 0.
func LoadAllowlist(path string) (*Allowlist, error) {
	a := &Allowlist{path: path, set: map[mux.Target]struct{}{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return a, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agent: read allowlist: %w", err)
	}
	var al mux.Allowlist
	if err := json.Unmarshal(b, &al); err != nil {
		return nil, fmt.Errorf("agent: parse allowlist %s: %w", path, err)
	}
	a.version, a.set = al.Version, toSet(al.Targets)
	return a, nil
}

// Version is the version held.
func (a *Allowlist) Version() int64 {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.version
}

// Allows reports whether host:port may be dialed. Host names compare
// case-insensitively, as DNS does.
func (a *Allowlist) Allows(host string, port uint16) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	_, ok := a.set[mux.Target{Host: strings.ToLower(host), Port: port}]
	return ok
}

// Apply installs a push. A push older than the held version is refused
// with ErrStaleAllowlist; the same version again is accepted (the relay
// re-sends on every reconnect). The list is on disk before Apply returns.
func (a *Allowlist) Apply(al mux.Allowlist) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if al.Version < a.version {
		return fmt.Errorf("%w: pushed v%d, holding v%d", ErrStaleAllowlist, al.Version, a.version)
	}
	b, err := json.Marshal(al)
	if err != nil {
		return err
	}
	if a.path != "" {
		if err := atomicfile.Write(a.path, b, 0o600); err != nil {
			return fmt.Errorf("agent: save allowlist: %w", err)
		}
	}
	a.version, a.set = al.Version, toSet(al.Targets)
	return nil
}

func toSet(ts []mux.Target) map[mux.Target]struct{} {
	m := make(map[mux.Target]struct{}, len(ts))
	for _, t := range ts {
		m[mux.Target{Host: strings.ToLower(t.Host), Port: t.Port}] = struct{}{}
	}
	return m
}
