package rtsp

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine of the gateway (readers, writers, workers, camera
// readers, keepalives, UDP senders) must end with its connection.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
