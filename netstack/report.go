package netstack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// The namespace helper tells the CLI how its setup went in one message on a
// SOCK_SEQPACKET socketpair, with the TUN descriptor attached (SCM_RIGHTS)
// when it worked:
//
//	"NDNS" | version 1 | ok 0 / failed 1 | MTU uint32 BE | len uint8 | interface name | len uint16 BE | error sentence
//
// The CLI answers one byte, reportGo, once its stack reads the descriptor;
// only then does the helper exec the tool, so the tool's first SYN is never
// lost to a stack that is not there yet (a lost SYN costs the tool a 1 s
// retransmit).
const (
	reportMagic    = "NDNS"
	reportVersion  = 1
	reportGo       = 'G'
	maxReportError = 4096
	// MaxReportSize is the largest message AppendReport produces.
	MaxReportSize = len(reportMagic) + 1 + 1 + 4 + 1 + 255 + 2 + maxReportError
)

// Report is what the namespace helper tells the CLI.
type Report struct {
	// Err is the sentence explaining why the namespace could not be set
	// up; empty when it was and the TUN descriptor is attached.
	Err string
	// MTU and Name describe the TUN interface when Err is empty.
	MTU  uint32
	Name string
}

// AppendReport appends the wire form of r to b. Over-long fields are
// truncated (the error sentence at a rune boundary) rather than refused:
// the helper must always be able to say what went wrong.
func AppendReport(b []byte, r Report) []byte {
	b = append(b, reportMagic...)
	b = append(b, reportVersion)
	if r.Err != "" {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.BigEndian.AppendUint32(b, r.MTU)
	name := r.Name
	if len(name) > 255 {
		name = name[:255]
	}
	b = append(b, byte(len(name)))
	b = append(b, name...)
	msg := r.Err
	if len(msg) > maxReportError {
		msg = msg[:maxReportError]
		for len(msg) > 0 && !utf8.ValidString(msg) {
			msg = msg[:len(msg)-1]
		}
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(msg)))
	return append(b, msg...)
}

var errBadReport = errors.New("malformed report from the namespace helper")

// ParseReport reads one report. The message comes from our own helper
// process, but that process has just run as root in a fresh namespace and
// may have died halfway: every length is checked, nothing is trusted.
func ParseReport(b []byte) (Report, error) {
	var r Report
	const fixed = len(reportMagic) + 1 + 1 + 4 + 1
	if len(b) < fixed || string(b[:len(reportMagic)]) != reportMagic {
		return r, errBadReport
	}
	b = b[len(reportMagic):]
	if b[0] != reportVersion {
		return r, fmt.Errorf("%w: version %d", errBadReport, b[0])
	}
	failed := b[1]
	if failed > 1 {
		return r, fmt.Errorf("%w: status %d", errBadReport, failed)
	}
	r.MTU = binary.BigEndian.Uint32(b[2:6])
	n := int(b[6])
	b = b[7:]
	if len(b) < n+2 {
		return Report{}, errBadReport
	}
	r.Name = string(b[:n])
	b = b[n:]
	m := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if len(b) != m || m > maxReportError {
		return Report{}, errBadReport
	}
	r.Err = string(b)
	switch {
	case failed == 1 && r.Err == "":
		return Report{}, fmt.Errorf("%w: failure without a reason", errBadReport)
	case failed == 1 && (r.MTU != 0 || r.Name != ""):
		return Report{}, fmt.Errorf("%w: failure with an interface", errBadReport)
	case failed == 0 && r.Err != "":
		return Report{}, fmt.Errorf("%w: success with an error", errBadReport)
	case failed == 0 && (r.MTU < 576 || r.MTU > MTU || r.Name == ""):
		return Report{}, fmt.Errorf("%w: MTU %d, interface %q", errBadReport, r.MTU, r.Name)
	}
	return r, nil
}
