package mux

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// HeaderVersion is the version byte every tunnel header starts with.
const HeaderVersion = 1

// Header flags.
const (
	// FlagDedicated asks the agent to carry this tunnel on a dedicated
	// connection instead of the shared session (issue 6).
	FlagDedicated uint8 = 1 << 0
)

// MaxHostLen is the longest target host a header may carry: a DNS name is
// at most 253 bytes, and one length byte bounds what a peer can make us
// read before we have validated anything.
const MaxHostLen = 253

// Header opens a tunnel: the relay writes it as the first bytes of a new
// stream, and the agent answers with a Status.
//
// Wire format (big endian):
//
//	version u8 | flags u8 | port u16 | hostLen u8 | host [hostLen]byte
type Header struct {
	Flags uint8
	Host  string
	Port  uint16
}

// ErrBadHeader is wrapped by every header decoding failure.
var ErrBadHeader = errors.New("mux: bad tunnel header")

// AppendHeader appends the encoding of h to b.
func AppendHeader(b []byte, h Header) ([]byte, error) {
	if err := h.validate(); err != nil {
		return b, err
	}
	b = append(b, HeaderVersion, h.Flags)
	b = binary.BigEndian.AppendUint16(b, h.Port)
	b = append(b, byte(len(h.Host)))
	return append(b, h.Host...), nil
}

// WriteHeader writes h to w in one Write call.
func WriteHeader(w io.Writer, h Header) error {
	var arr [5 + MaxHostLen]byte
	b, err := AppendHeader(arr[:0], h)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// ReadHeader reads one header from r. It reads exactly the header's bytes
// and never more, so the stream's payload stays in r.
func ReadHeader(r io.Reader) (Header, error) {
	var fixed [5]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return Header{}, fmt.Errorf("%w: %v", ErrBadHeader, err)
	}
	if fixed[0] != HeaderVersion {
		return Header{}, fmt.Errorf("%w: version %d, want %d", ErrBadHeader, fixed[0], HeaderVersion)
	}
	h := Header{Flags: fixed[1], Port: binary.BigEndian.Uint16(fixed[2:4])}
	n := int(fixed[4])
	var host [255]byte
	if _, err := io.ReadFull(r, host[:n]); err != nil {
		return Header{}, fmt.Errorf("%w: host: %v", ErrBadHeader, err)
	}
	h.Host = string(host[:n])
	if err := h.validate(); err != nil {
		return Header{}, err
	}
	return h, nil
}

func (h Header) validate() error {
	switch {
	case h.Host == "":
		return fmt.Errorf("%w: empty host", ErrBadHeader)
	case len(h.Host) > MaxHostLen:
		return fmt.Errorf("%w: host of %d bytes exceeds %d", ErrBadHeader, len(h.Host), MaxHostLen)
	case h.Port == 0:
		return fmt.Errorf("%w: port 0", ErrBadHeader)
	}
	for i := 0; i < len(h.Host); i++ {
		if c := h.Host[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("%w: host has byte 0x%02x", ErrBadHeader, c)
		}
	}
	return nil
}
