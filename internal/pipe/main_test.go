package pipe_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: both
// copies of every Join must be gone when it returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
