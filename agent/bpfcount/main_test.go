//go:build linux

package bpfcount_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain runs the child side of the tests that need a process of their
// own (no BPF rights), and fails the package if a goroutine outlives its
// tests.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	goleak.VerifyTestMain(m)
}
