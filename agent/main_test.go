package agent

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a goroutine outlives its tests: every
// session, tunnel and UDP relay must end with its connection.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
