package store

import (
	"context"
	"errors"
	"fmt"
)

// Loopback addresses are offsets into 127.0.0.0/8. The CLI binds each
// device to its own address so that one port (say 443) can be forwarded for
// every device at once.
const (
	firstLoopback = 2         // 127.0.0.2; 127.0.0.1 is the host's own
	lastLoopback  = 1<<24 - 2 // 127.255.255.254; .255.255.255 is broadcast
)

// errLoopbackExhausted is returned by CreateDevice once every address in
// 127.0.0.0/8 has been handed out.
var errLoopbackExhausted = errors.New("loopback address range exhausted")

// loopbackIP returns the dotted form of offset n: 2 is 127.0.0.2 and 256
// is 127.0.1.0.
func loopbackIP(n int64) string {
	return fmt.Sprintf("127.%d.%d.%d", n>>16&0xff, n>>8&0xff, n&0xff)
}

// allocLoopback hands out the next loopback offset inside tx. Offsets only
// grow, so the address of a deleted device is never given to a new one and
// a stale plan in a CLI can never reach the wrong device.
func allocLoopback(ctx context.Context, tx *txn) (int64, error) {
	var n int64
	err := tx.QueryRowContext(ctx,
		`UPDATE counters SET value = value + 1 WHERE name = 'loopback' RETURNING value`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("allocate loopback: %w", err)
	}
	if n < firstLoopback || n > lastLoopback {
		return 0, errLoopbackExhausted
	}
	return n, nil
}
