package onvif

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"io"
	"strings"
)

// WS-Discovery's multicast group and port (IPv4).
const (
	MulticastAddr = "239.255.255.250:3702"
	// MaxDatagram bounds a ProbeMatch datagram the agent reads; a longer
	// one is dropped. Real answers are 1–4 KB.
	MaxDatagram = 16 << 10
)

// Caps on what one message may make the agent keep.
const (
	maxMatches = 32  // ProbeMatch elements per message
	maxItems   = 32  // scopes, types or XAddrs per match
	maxField   = 512 // bytes of one string kept
)

// ErrNotSOAP is wrapped when a message is not a SOAP envelope.
var ErrNotSOAP = errors.New("not a SOAP envelope")

// QName is an XML qualified name as a Probe's Types list writes it.
type QName struct {
	Prefix, Space, Local string
}

// NetworkVideoTransmitter is the ONVIF discovery type of a camera or an
// encoder.
var NetworkVideoTransmitter = QName{"dn", "http://www.onvif.org/ver10/network/wsdl", "NetworkVideoTransmitter"}

// Probe is the WS-Discovery Probe for devices of type typ (any device when
// typ is the zero QName), with messageID (a "uuid:…" URN) for the answers
// to relate to.
func Probe(messageID string, typ QName) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>`)
	b.WriteString(`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"`)
	if typ.Local != "" {
		fmt.Fprintf(&b, ` xmlns:%s="%s"`, typ.Prefix, html.EscapeString(typ.Space))
	}
	b.WriteString(`><s:Header>`)
	fmt.Fprintf(&b, `<a:MessageID>%s</a:MessageID>`, html.EscapeString(messageID))
	b.WriteString(`<a:To s:mustUnderstand="true">urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>`)
	b.WriteString(`<a:Action s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action>`)
	b.WriteString(`</s:Header><s:Body><d:Probe>`)
	if typ.Local != "" {
		fmt.Fprintf(&b, `<d:Types>%s:%s</d:Types>`, typ.Prefix, typ.Local)
	}
	b.WriteString(`</d:Probe></s:Body></s:Envelope>`)
	return b.Bytes()
}

// ProbeMatch is one device's answer to a Probe.
type ProbeMatch struct {
	// Address is the device's endpoint reference (usually "urn:uuid:…"):
	// the same device answering twice, or on two interfaces, has one.
	Address string
	Types   []string // QNames as sent ("dn:NetworkVideoTransmitter")
	Scopes  []string
	XAddrs  []string // service URLs
}

// ProbeMatches is a parsed ProbeMatches message.
type ProbeMatches struct {
	RelatesTo string // the MessageID of the Probe answered
	Matches   []ProbeMatch
}

type probeMatchesEnvelope struct {
	XMLName xml.Name
	Header  struct {
		RelatesTo string `xml:"RelatesTo"`
	} `xml:"Header"`
	Body struct {
		ProbeMatches *struct {
			ProbeMatch []struct {
				EndpointReference struct {
					Address string `xml:"Address"`
				} `xml:"EndpointReference"`
				Types  string `xml:"Types"`
				Scopes string `xml:"Scopes"`
				XAddrs string `xml:"XAddrs"`
			} `xml:"ProbeMatch"`
		} `xml:"ProbeMatches"`
	} `xml:"Body"`
}

// ParseProbeMatches reads a ProbeMatches message. Input longer than
// MaxDatagram is refused; lists and strings beyond the caps are cut.
func ParseProbeMatches(b []byte) (ProbeMatches, error) {
	if len(b) > MaxDatagram {
		return ProbeMatches{}, fmt.Errorf("probe match of %d bytes exceeds %d", len(b), MaxDatagram)
	}
	var env probeMatchesEnvelope
	if err := unmarshal(b, &env); err != nil {
		return ProbeMatches{}, err
	}
	if env.Body.ProbeMatches == nil {
		return ProbeMatches{}, errors.New("SOAP message holds no ProbeMatches")
	}
	out := ProbeMatches{RelatesTo: clip(strings.TrimSpace(env.Header.RelatesTo))}
	for i, m := range env.Body.ProbeMatches.ProbeMatch {
		if i == maxMatches {
			break
		}
		out.Matches = append(out.Matches, ProbeMatch{
			Address: clip(strings.TrimSpace(m.EndpointReference.Address)),
			Types:   fields(m.Types),
			Scopes:  fields(m.Scopes),
			XAddrs:  fields(m.XAddrs),
		})
	}
	return out, nil
}

// envelope is a SOAP envelope type: root reports the local name of the
// root element it was decoded from.
type envelope interface{ root() string }

func (e *probeMatchesEnvelope) root() string { return e.XMLName.Local }

// unmarshal decodes a SOAP envelope, refusing anything else.
func unmarshal(b []byte, v envelope) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	// A device names its charset; what it says is read as UTF-8, which is
	// what every ONVIF device sends in practice.
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrNotSOAP, err)
	}
	if n := v.root(); n != "Envelope" {
		return fmt.Errorf("%w: root element is %q", ErrNotSOAP, n)
	}
	return nil
}

// fields splits an xs:list, keeping at most maxItems items of at most
// maxField bytes.
func fields(s string) []string {
	var out []string
	for f := range strings.FieldsSeq(s) {
		if len(out) == maxItems {
			break
		}
		out = append(out, clip(f))
	}
	return out
}

func clip(s string) string {
	if len(s) > maxField {
		return strings.ToValidUTF8(s[:maxField], "")
	}
	return s
}

// HasType reports whether types (QNames as sent) hold one of local name
// local, whatever its prefix.
func HasType(types []string, local string) bool {
	for _, t := range types {
		if _, l, ok := strings.Cut(t, ":"); ok && l == local || !ok && t == local {
			return true
		}
	}
	return false
}
