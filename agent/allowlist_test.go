package agent

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/nanodems/connector/mux"
)

func TestAllowlistMovesForwardAndPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "allowlist.json")
	a, err := LoadAllowlist(path)
	if err != nil {
		t.Fatal(err)
	}
	if a.Version() != 0 || a.Allows("10.0.0.5", 554) {
		t.Fatal("a missing file must load as an empty list at v0")
	}
	v3 := mux.Allowlist{Version: 3, Targets: []mux.Target{{Host: "Cam-1.lan", Port: 80}, {Host: "10.0.0.5", Port: 554}}}
	if err := a.Apply(v3); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		host string
		port uint16
		want bool
	}{
		{"10.0.0.5", 554, true},
		{"cam-1.LAN", 80, true}, // DNS names compare case-insensitively
		{"10.0.0.5", 80, false},
		{"10.0.0.6", 554, false},
	} {
		if got := a.Allows(tc.host, tc.port); got != tc.want {
			t.Errorf("Allows(%s, %d) = %v, want %v", tc.host, tc.port, got, tc.want)
		}
	}
	err = a.Apply(mux.Allowlist{Version: 2})
	if !errors.Is(err, ErrStaleAllowlist) {
		t.Fatalf("stale push: %v, want ErrStaleAllowlist", err)
	}
	if a.Version() != 3 || !a.Allows("10.0.0.5", 554) {
		t.Fatal("a refused push changed the list")
	}
	if err := a.Apply(v3); err != nil {
		t.Fatalf("the same version again (a reconnect) must be accepted: %v", err)
	}

	// A restarted agent holds the same list before it reaches the relay.
	b, err := LoadAllowlist(path)
	if err != nil {
		t.Fatal(err)
	}
	if b.Version() != 3 || !b.Allows("10.0.0.5", 554) || b.Allows("10.0.0.5", 80) {
		t.Fatalf("reloaded list: v%d", b.Version())
	}
}
