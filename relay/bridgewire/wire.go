// Package bridgewire is the wire of the bridge between two relays of a
// fleet (relay.bridge, docs/ha.md): the two messages that open a bridged
// tunnel on a stream of the smux session between the relays. The calling
// relay opens a stream whose first bytes are an Open (they leave with the
// stream's SYN in one write); the relay that holds the agent answers with
// a status. After that the stream carries the tunnel as mux.Stream does
// between a relay and its agent: in-band Data and EOF frames, a stream
// that ends without EOF being a cut.
//
// The messages are binary with one-byte lengths, as the agent's tunnel
// header is (mux.Header): an open is parsed by every relay of the fleet
// for every bridged tunnel.
package bridgewire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Protocol is the ALPN name of the bridge on the peer listener.
const Protocol = "nanodems-bridge/1"

// Version is the first byte of an open.
const Version = 1

// MaxField bounds the handle and the agent id of an open.
const MaxField = 255

// MaxReason bounds a status's reason.
const MaxReason = 1024

// ErrBadOpen is wrapped by every open decoding failure.
var ErrBadOpen = errors.New("bridge: bad open")

// ErrBadStatus is wrapped by every status decoding failure.
var ErrBadStatus = errors.New("bridge: bad status")

// Open is what the calling relay asks for: the handle it resolved and
// checked, the agent it chose, and the tunnel's mux header flags. The
// relay that holds the agent re-checks that the handle still resolves
// and that the agent is its own.
type Open struct {
	Handle string
	Agent  string
	Flags  uint8
}

// AppendOpen appends o's wire form to b:
//
//	version u8 | flags u8 | handleLen u8 | handle | agentLen u8 | agent
func AppendOpen(b []byte, o Open) ([]byte, error) {
	if len(o.Handle) == 0 || len(o.Handle) > MaxField || len(o.Agent) > MaxField {
		return b, fmt.Errorf("%w: handle of %d bytes, agent of %d", ErrBadOpen, len(o.Handle), len(o.Agent))
	}
	b = append(b, Version, o.Flags, byte(len(o.Handle)))
	b = append(b, o.Handle...)
	b = append(b, byte(len(o.Agent)))
	return append(b, o.Agent...), nil
}

// ReadOpen reads one open from r.
func ReadOpen(r io.Reader) (Open, error) {
	var o Open
	var fixed [3]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return o, fmt.Errorf("%w: %v", ErrBadOpen, err)
	}
	if fixed[0] != Version {
		return o, fmt.Errorf("%w: version %d", ErrBadOpen, fixed[0])
	}
	o.Flags = fixed[1]
	var buf [MaxField + 1]byte
	n := int(fixed[2])
	if n == 0 {
		return o, fmt.Errorf("%w: empty handle", ErrBadOpen)
	}
	// The handle and the agent's length in one read.
	if _, err := io.ReadFull(r, buf[:n+1]); err != nil {
		return o, fmt.Errorf("%w: handle: %v", ErrBadOpen, err)
	}
	o.Handle = string(buf[:n])
	m := int(buf[n])
	if _, err := io.ReadFull(r, buf[:m]); err != nil {
		return o, fmt.Errorf("%w: agent: %v", ErrBadOpen, err)
	}
	o.Agent = string(buf[:m])
	return o, nil
}

// AppendStatus appends the answer of the relay that holds the agent:
//
//	code u8 | reasonLen u16 | reason
//
// Code 0 is OK (its reason is the agent's OK reason, a UDP relay's
// ports); the others are the relay's Dial errors (relay/bridge_wire.go).
// A reason longer than MaxReason is cut.
func AppendStatus(b []byte, code byte, reason string) []byte {
	if len(reason) > MaxReason {
		reason = reason[:MaxReason]
	}
	b = append(b, code)
	b = binary.BigEndian.AppendUint16(b, uint16(len(reason)))
	return append(b, reason...)
}

// ReadStatus reads one status from r.
func ReadStatus(r io.Reader) (code byte, reason string, err error) {
	var fixed [3]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return 0, "", fmt.Errorf("%w: %w", ErrBadStatus, err)
	}
	n := int(binary.BigEndian.Uint16(fixed[1:]))
	if n > MaxReason {
		return 0, "", fmt.Errorf("%w: reason of %d bytes", ErrBadStatus, n)
	}
	if n == 0 {
		return fixed[0], "", nil
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, "", fmt.Errorf("%w: reason: %w", ErrBadStatus, err)
	}
	return fixed[0], string(buf), nil
}
