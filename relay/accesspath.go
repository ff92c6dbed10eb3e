package relay

import (
	"errors"
	"fmt"
	"sync/atomic"
)

// AccessPath is the way a tunnel reached Dial: each access path says which
// it is in its DialOptions, and the relay's tunnel counters
// (docs/metrics.md) are kept per path. The zero value is the WebSocket
// tunnel, the plain tunnel programs open.
type AccessPath uint8

// The access paths. PathBridge is a tunnel this relay opens to one of
// its own agents for another relay (BridgeTunnel); that relay counts the
// same tunnel under the path it came in by.
const (
	PathWS     AccessPath = iota // /api/tunnel/{handle}
	PathWeb                      // the browser proxy, /c/{handle}/ and the subdomain mode
	PathCLI                      // the CLI mux and raw tunnels
	PathRTSP                     // the RTSP gateway's camera sessions and UDP relays
	PathBridge                   // opened here for another relay
	numPaths
)

var pathNames = [numPaths]string{"ws", "web", "cli", "rtsp", "bridge"}

func (p AccessPath) String() string {
	if p < numPaths {
		return pathNames[p]
	}
	return fmt.Sprintf("path(%d)", uint8(p))
}

// dialResult is how an open that passed the access check ended.
type dialResult uint8

const (
	resultOK          dialResult = iota
	resultRefused                // the device refused the connection
	resultUnreachable            // the device did not answer, or anything else went wrong
	resultNotAllowed             // the agent's allowlist does not hold the target
	resultOffline                // no agent of the site could take it
	numResults
)

var resultNames = [numResults]string{"ok", "refused", "unreachable", "not_allowed", "offline"}

// errRefused is ErrUnreachable as the agent reports a connection the
// device refused (a closed port): a sentinel of its own so that the
// counters tell it from a device that does not answer.
var errRefused = fmt.Errorf("%w: connection refused", ErrUnreachable)

// resultOf classifies Dial's error.
func resultOf(err error) dialResult {
	switch {
	case err == nil:
		return resultOK
	case errors.Is(err, errRefused):
		return resultRefused
	case errors.Is(err, ErrNotAllowed):
		return resultNotAllowed
	case errors.Is(err, ErrAgentOffline):
		return resultOffline
	default:
		return resultUnreachable
	}
}

// deniedBy reports an error of the access check itself (an unknown or
// revoked handle, another tenant's): no device was asked, so it is
// counted apart from the opens.
func deniedBy(err error) bool {
	return errors.Is(err, ErrUnknownHandle) || errors.Is(err, ErrOtherTenant)
}

// pathMeter is the tunnel counters of one access path. Every field is an
// atomic the data path adds to: a tunnel costs two adds when it opens,
// one when it closes, and one per read or write it carries; the
// Prometheus collector reads them at scrape time.
type pathMeter struct {
	opened     [numResults]atomic.Uint64
	denied     atomic.Uint64
	open       atomic.Int64
	toDevice   atomic.Uint64 // bytes written into tunnels (operator → device)
	fromDevice atomic.Uint64 // bytes read from tunnels (device → operator)
}

// dialed counts the end of one Dial on this path.
func (m *pathMeter) dialed(err error) {
	if err != nil && deniedBy(err) {
		m.denied.Add(1)
		return
	}
	m.opened[resultOf(err)].Add(1)
}
