package relay_test

import (
	"context"
	"testing"
	"time"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
)

// keyRevokedExit is how nanodems-tunnel ends when the partner key that
// issued its session is revoked.
const keyRevokedExit = "the relay refused this CLI session: partner key revoked: the CLI sessions it issued are revoked with it"

// runCLI runs nanodems-tunnel's session (cli.Run, without OS listeners)
// with ops_ token on d until it ends, which the returned channel
// reports; it returns once the first plan has arrived.
func runCLI(t *testing.T, d *demo.Demo, token string) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done, planned := make(chan error, 1), make(chan struct{}, 1)
	go func() {
		done <- cli.Run(ctx, cli.Options{Relay: cliRelay(d, token), NoBind: true, Logger: quietLogger(),
			OnPlan: func([]cli.PlanEntry) {
				select {
				case planned <- struct{}{}:
				default:
				}
			}})
	}()
	t.Cleanup(cancel)
	select {
	case <-planned:
	case err := <-done:
		t.Fatalf("the CLI ended before its first plan: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("the CLI got no plan in 15 s")
	}
	return done
}

// wantCLIExit waits (generously) for the CLI of done to end with sentence.
func wantCLIExit(t *testing.T, done <-chan error, sentence string) {
	t.Helper()
	select {
	case err := <-done:
		if err == nil || err.Error() != sentence {
			t.Errorf("the CLI ended with %v, want %q", err, sentence)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("the CLI still runs 30 s after its session was revoked")
	}
}
