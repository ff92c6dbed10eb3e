package mux

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// HeaderVersion is the version byte every tunnel header starts with.
const HeaderVersion = 1

// Header flags.
const (
	// FlagDedicated asks the agent to carry this tunnel on a dedicated
	// connection instead of the shared session.
	FlagDedicated uint8 = 1 << 0
	// FlagUDP asks the agent for a UDP relay to the tunnel's host instead
	// of a TCP connection to host:port: an RTP/RTCP port pair on the LAN
	// whose datagrams travel in-band on the stream (see UDP relays below).
	// It serves cameras that only stream RTP over UDP (they answer 461 to
	// interleaved TCP). host:port must be in the allowlist as for TCP (the
	// camera's RTSP port): the relay reaches nothing the list does not
	// name, and datagrams go only to and from that host's address.
	FlagUDP uint8 = 1 << 1
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

// UDP relays (FlagUDP). The agent answers the header with an OK status
// whose reason names the LAN port pair it bound (FormatUDPPorts, the
// camera's client_port), then both ends carry datagrams on the stream as
//
//	channel u8 | len u16 (big endian) | payload [len]byte
//
// like RTSP's interleaved frames without the '$'. Channel 0 is RTP and 1
// RTCP, both ways; channel 2 goes relay → agent only and carries the
// camera's own port pair (rtp u16 | rtcp u16, its server_port), where the
// agent sends what the relay writes. Until it has them, the agent sends to
// the ports the camera's datagrams came from. Other channels are skipped:
// a later version may add some.
const (
	UDPChannelRTP  byte = 0
	UDPChannelRTCP byte = 1
	UDPChannelPeer byte = 2

	// DatagramHeaderLen is the size of a datagram frame's header.
	DatagramHeaderLen = 3
	// MaxDatagram is the largest payload a frame carries (a UDP payload
	// over IPv4 is at most 65507 bytes, so any datagram fits).
	MaxDatagram = 65535
)

// ErrBadDatagram is wrapped by every datagram frame decoding failure.
var ErrBadDatagram = errors.New("mux: bad datagram frame")

// AppendDatagram appends the frame of one datagram to b.
func AppendDatagram(b []byte, ch byte, payload []byte) ([]byte, error) {
	if len(payload) > MaxDatagram {
		return b, fmt.Errorf("%w: %d bytes exceeds %d", ErrBadDatagram, len(payload), MaxDatagram)
	}
	b = append(b, ch)
	b = binary.BigEndian.AppendUint16(b, uint16(len(payload)))
	return append(b, payload...), nil
}

// PutDatagramHeader writes the header of a frame whose payload of n bytes
// already sits at b[DatagramHeaderLen:], so a datagram read from a socket
// straight into the buffer goes out without a copy.
func PutDatagramHeader(b []byte, ch byte, n int) {
	b[0] = ch
	binary.BigEndian.PutUint16(b[1:3], uint16(n))
}

// ReadDatagram reads one datagram frame from r into buf, which must hold
// MaxDatagram bytes. It reads exactly the frame's bytes. A stream that
// ends between frames returns io.EOF; one that ends inside a frame an
// error wrapping ErrBadDatagram.
func ReadDatagram(r io.Reader, buf []byte) (ch byte, n int, err error) {
	if len(buf) < MaxDatagram {
		return 0, 0, fmt.Errorf("%w: buffer of %d bytes", ErrBadDatagram, len(buf))
	}
	var hdr [DatagramHeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.EOF {
			return 0, 0, io.EOF
		}
		return 0, 0, fmt.Errorf("%w: header: %v", ErrBadDatagram, err)
	}
	n = int(binary.BigEndian.Uint16(hdr[1:3]))
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		return 0, 0, fmt.Errorf("%w: payload: %v", ErrBadDatagram, err)
	}
	return hdr[0], n, nil
}

// AppendUDPPeer appends the relay's channel-2 frame naming the camera's
// RTP and RTCP ports.
func AppendUDPPeer(b []byte, rtp, rtcp uint16) []byte {
	var p [4]byte
	binary.BigEndian.PutUint16(p[0:2], rtp)
	binary.BigEndian.PutUint16(p[2:4], rtcp)
	b, _ = AppendDatagram(b, UDPChannelPeer, p[:])
	return b
}

// ParseUDPPeer reads the payload of a channel-2 frame.
func ParseUDPPeer(p []byte) (rtp, rtcp uint16, err error) {
	if len(p) != 4 {
		return 0, 0, fmt.Errorf("%w: peer ports of %d bytes, want 4", ErrBadDatagram, len(p))
	}
	rtp, rtcp = binary.BigEndian.Uint16(p[0:2]), binary.BigEndian.Uint16(p[2:4])
	if rtp == 0 || rtcp == 0 {
		return 0, 0, fmt.Errorf("%w: peer port 0", ErrBadDatagram)
	}
	return rtp, rtcp, nil
}

// udpPortsPrefix starts the reason of a UDP relay's OK status: the words
// of the Transport parameter the ports become, readable in a log.
const udpPortsPrefix = "client_port="

// FormatUDPPorts is the reason of the agent's OK status for a FlagUDP
// stream: "client_port=50000-50001".
func FormatUDPPorts(rtp, rtcp uint16) string {
	return udpPortsPrefix + strconv.Itoa(int(rtp)) + "-" + strconv.Itoa(int(rtcp))
}

// ParseUDPPorts reads FormatUDPPorts' output. An OK status without it
// means an agent that does not know FlagUDP (it dialed TCP instead).
func ParseUDPPorts(s string) (rtp, rtcp uint16, err error) {
	rest, ok := strings.CutPrefix(s, udpPortsPrefix)
	a, b, ok2 := strings.Cut(rest, "-")
	if !ok || !ok2 {
		return 0, 0, fmt.Errorf("mux: agent answered %q, not a UDP port pair (an agent without UDP relays?)", s)
	}
	port := func(v string) (uint16, error) {
		if v == "" || len(v) > 5 || strings.TrimLeft(v, "0123456789") != "" {
			return 0, fmt.Errorf("mux: bad UDP port %q in %q", v, s)
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 65535 {
			return 0, fmt.Errorf("mux: bad UDP port %q in %q", v, s)
		}
		return uint16(n), nil
	}
	if rtp, err = port(a); err != nil {
		return 0, 0, err
	}
	if rtcp, err = port(b); err != nil {
		return 0, 0, err
	}
	return rtp, rtcp, nil
}

// ReadStatusReason is ReadStatus that also returns the reason of an OK
// status, where a FlagUDP stream's agent names its ports. It reads exactly
// the status's bytes, as ReadStatus does.
func ReadStatusReason(r io.Reader) (string, error) {
	var rec bytes.Buffer
	if err := ReadStatus(io.TeeReader(r, &rec)); err != nil {
		return "", err
	}
	return string(rec.Bytes()[3:]), nil
}
