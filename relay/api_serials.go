package relay

import (
	"context"
	"errors"
	"fmt"

	"github.com/nanodems/connector/relay/store"
)

// A device's manufacturer serial (the "serial" of device create and
// patch): a device that runs the agent itself claims its place with it
// (POST /api/claim, claim.go).

// maxSerial bounds a serial: manufacturers' are 10 to 40 characters.
const maxSerial = 128

// serial is the input's serial, checked: nil when the input leaves it,
// "" to clear it. A serial is letters, digits and . _ - : / (what
// manufacturers print on the label), so it is never a path or markup.
func (in *deviceInput) serial() (*string, error) {
	if in.Serial == nil {
		return nil, nil
	}
	v := *in.Serial
	if len(v) > maxSerial {
		return nil, fmt.Errorf("%w: serial is longer than %d characters", errBadRequest, maxSerial)
	}
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == ':' || c == '/') {
			return nil, fmt.Errorf("%w: serial %q may hold only letters, digits and . _ - : /", errBadRequest, v)
		}
	}
	return &v, nil
}

// serialConflict words a refused serial write as the API's 409.
func serialConflict(err error) error {
	var se *store.SerialError
	if errors.As(err, &se) {
		return &lookupError{msg: se.Error(), err: err}
	}
	return err
}

// addSerial adds the device's serial, and the agent that claimed it, to
// its JSON.
func (s *managementAPI) addSerial(ctx context.Context, deviceID string, out map[string]any) error {
	ds, err := s.store.GetDeviceSerial(ctx, deviceID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	out["serial"] = ds.Serial
	if ds.ClaimedAt != nil {
		out["claimed_by_agent"] = ds.AgentID
		out["claimed_at"] = ds.ClaimedAt.UTC()
	}
	return nil
}
