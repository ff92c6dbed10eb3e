package mux

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// CLIProtocol is the ALPN protocol id of the CLI's raw transport: a TLS
// connection to the relay's API port that negotiates it carries a
// CLIHello, the relay's CLIAnswer, and then one smux session (Config),
// the CLI being the client, without the WebSocket framing of
// /api/cli/mux (client frames masked, every byte XORed, one more header
// per frame).
const CLIProtocol = "nanodems-cli/1"

// MaxCLITokenLen bounds the token of a CLIHello: an ops_ token is 47
// bytes; one length byte bounds what a client can make the relay read
// before it has checked anything.
const MaxCLITokenLen = 255

// ErrBadCLIHello is wrapped by every CLIHello decoding failure.
var ErrBadCLIHello = errors.New("mux: bad CLI hello")

// ErrBadCLIAnswer is wrapped by every CLIAnswer decoding failure.
var ErrBadCLIAnswer = errors.New("mux: bad CLI answer")

// AppendCLIHello appends the CLI's first frame on the raw transport, its
// session token. Wire format:
//
//	version u8 | tokenLen u8 | token [tokenLen]byte
//
// The token is printable ASCII (0x21-0x7e), 1 to MaxCLITokenLen bytes.
func AppendCLIHello(b []byte, token string) ([]byte, error) {
	if err := validCLIToken(token); err != nil {
		return b, err
	}
	b = append(b, HeaderVersion, byte(len(token)))
	return append(b, token...), nil
}

// ReadCLIHello reads the CLI's first frame and returns its token. It
// reads exactly the frame's bytes and never more: what follows is smux.
func ReadCLIHello(r io.Reader) (string, error) {
	var fixed [2]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadCLIHello, err)
	}
	if fixed[0] != HeaderVersion {
		return "", fmt.Errorf("%w: version %d, want %d", ErrBadCLIHello, fixed[0], HeaderVersion)
	}
	var tok [MaxCLITokenLen]byte
	n := int(fixed[1])
	if _, err := io.ReadFull(r, tok[:n]); err != nil {
		return "", fmt.Errorf("%w: token: %v", ErrBadCLIHello, err)
	}
	token := string(tok[:n])
	if err := validCLIToken(token); err != nil {
		return "", err
	}
	return token, nil
}

func validCLIToken(token string) error {
	if token == "" || len(token) > MaxCLITokenLen {
		return fmt.Errorf("%w: token of %d bytes, want 1 to %d", ErrBadCLIHello, len(token), MaxCLITokenLen)
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("%w: token has byte 0x%02x", ErrBadCLIHello, c)
		}
	}
	return nil
}

// CLIAnswer is the relay's answer to a CLIHello: an HTTP status, as the
// WebSocket's upgrade would have answered (200: smux follows; 401: the
// session is refused, and no retry fixes it; 503: try again later), and a
// one-line reason for a refusal.
type CLIAnswer struct {
	Status int
	Reason string
}

// AppendCLIAnswer appends a's encoding. Wire format (big endian):
//
//	version u8 | status u16 | reasonLen u8 | reason [reasonLen]byte
//
// A reason past MaxReasonLen bytes is cut.
func AppendCLIAnswer(b []byte, a CLIAnswer) []byte {
	reason := a.Reason
	if len(reason) > MaxReasonLen {
		reason = reason[:MaxReasonLen]
	}
	b = append(b, HeaderVersion)
	b = binary.BigEndian.AppendUint16(b, uint16(a.Status))
	b = append(b, byte(len(reason)))
	return append(b, reason...)
}

// ReadCLIAnswer reads the relay's answer, exactly its bytes. The status
// is 100 to 599.
func ReadCLIAnswer(r io.Reader) (CLIAnswer, error) {
	var fixed [4]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return CLIAnswer{}, fmt.Errorf("%w: %v", ErrBadCLIAnswer, err)
	}
	if fixed[0] != HeaderVersion {
		return CLIAnswer{}, fmt.Errorf("%w: version %d, want %d", ErrBadCLIAnswer, fixed[0], HeaderVersion)
	}
	a := CLIAnswer{Status: int(binary.BigEndian.Uint16(fixed[1:3]))}
	var reason [MaxReasonLen]byte
	n := int(fixed[3])
	if _, err := io.ReadFull(r, reason[:n]); err != nil {
		return CLIAnswer{}, fmt.Errorf("%w: reason: %v", ErrBadCLIAnswer, err)
	}
	if a.Status < 100 || a.Status > 599 {
		return CLIAnswer{}, fmt.Errorf("%w: status %d", ErrBadCLIAnswer, a.Status)
	}
	a.Reason = string(reason[:n])
	return a, nil
}
