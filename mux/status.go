package mux

import (
	"errors"
	"fmt"
	"io"
)

// Code is the agent's answer to a tunnel header. The codes tell apart the
// failures an operator must see differently: a refused port (502, check the
// service), a timeout (504, check the camera), an unreachable host (502,
// check the LAN) and an allowlist refusal (403, edit the device).
type Code uint8

const (
	OK          Code = 0
	Refused     Code = 1 // the target answered with RST
	TimedOut    Code = 2 // the target did not answer in time
	Unreachable Code = 3 // no route, host down, name does not resolve
	NotAllowed  Code = 4 // (host, port) is not in the agent's allowlist
	BadRequest  Code = 5 // the header did not parse
	AgentError  Code = 6 // anything else on the agent
)

var codeText = [...]string{
	OK:          "ok",
	Refused:     "connection refused",
	TimedOut:    "timed out",
	Unreachable: "unreachable",
	NotAllowed:  "target not in allowlist",
	BadRequest:  "bad tunnel header",
	AgentError:  "agent error",
}

func (c Code) String() string {
	if int(c) < len(codeText) {
		return codeText[c]
	}
	return fmt.Sprintf("code %d", uint8(c))
}

// MaxReasonLen bounds the free-text reason in a status.
const MaxReasonLen = 255

// StatusError is a non-OK status received from the agent.
type StatusError struct {
	Code   Code
	Reason string // the agent's one-line detail, may be empty
}

func (e *StatusError) Error() string {
	if e.Reason == "" {
		return e.Code.String()
	}
	return e.Code.String() + ": " + e.Reason
}

// ErrBadStatus is wrapped by every status decoding failure.
var ErrBadStatus = errors.New("mux: bad tunnel status")

// WriteStatus writes the agent's answer. Wire format:
//
//	version u8 | code u8 | reasonLen u8 | reason [reasonLen]byte
func WriteStatus(w io.Writer, c Code, reason string) error {
	if len(reason) > MaxReasonLen {
		reason = reason[:MaxReasonLen]
	}
	var arr [3 + MaxReasonLen]byte
	b := append(arr[:0], HeaderVersion, byte(c), byte(len(reason)))
	b = append(b, reason...)
	_, err := w.Write(b)
	return err
}

// ReadStatus reads the agent's answer. It returns nil for OK, a
// *StatusError for any other code, or an error wrapping ErrBadStatus.
func ReadStatus(r io.Reader) error {
	var fixed [3]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return fmt.Errorf("%w: %v", ErrBadStatus, err)
	}
	if fixed[0] != HeaderVersion {
		return fmt.Errorf("%w: version %d", ErrBadStatus, fixed[0])
	}
	var reason [MaxReasonLen]byte
	n := int(fixed[2])
	if _, err := io.ReadFull(r, reason[:n]); err != nil {
		return fmt.Errorf("%w: reason: %v", ErrBadStatus, err)
	}
	code := Code(fixed[1])
	if code == OK {
		return nil
	}
	if int(code) >= len(codeText) {
		return fmt.Errorf("%w: unknown code %d", ErrBadStatus, code)
	}
	return &StatusError{Code: code, Reason: string(reason[:n])}
}
