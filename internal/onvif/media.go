package onvif

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// The media service: where it is (GetServices, or GetCapabilities on a
// device older than ONVIF 2.0) and the RTSP URI of its first profile
// (GetProfiles, GetStreamUri). Together they tell which ports a camera
// serves beyond its device service: the media service's and RTSP's.

// Namespaces of the media services; a device may offer either.
const (
	MediaNamespace  = "http://www.onvif.org/ver10/media/wsdl"
	Media2Namespace = "http://www.onvif.org/ver20/media/wsdl"
)

// SOAP request bodies and their actions.
const (
	GetServices = `<?xml version="1.0" encoding="UTF-8"?>` +
		`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">` +
		`<s:Body xmlns:tds="http://www.onvif.org/ver10/device/wsdl"><tds:GetServices><tds:IncludeCapability>false</tds:IncludeCapability></tds:GetServices></s:Body></s:Envelope>`
	GetServicesAction = "http://www.onvif.org/ver10/device/wsdl/GetServices"

	GetCapabilities = `<?xml version="1.0" encoding="UTF-8"?>` +
		`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">` +
		`<s:Body xmlns:tds="http://www.onvif.org/ver10/device/wsdl"><tds:GetCapabilities><tds:Category>Media</tds:Category></tds:GetCapabilities></s:Body></s:Envelope>`
	GetCapabilitiesAction = "http://www.onvif.org/ver10/device/wsdl/GetCapabilities"

	GetProfiles = `<?xml version="1.0" encoding="UTF-8"?>` +
		`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">` +
		`<s:Body xmlns:trt="http://www.onvif.org/ver10/media/wsdl"><trt:GetProfiles/></s:Body></s:Envelope>`
	GetProfilesAction = "http://www.onvif.org/ver10/media/wsdl/GetProfiles"

	GetStreamURIAction = "http://www.onvif.org/ver10/media/wsdl/GetStreamUri"
)

// SOAPContentType is the Content-Type of a SOAP 1.2 request for action.
func SOAPContentType(action string) string {
	return `application/soap+xml; charset=utf-8; action="` + action + `"`
}

// GetStreamURI is the request for the RTP-unicast-over-RTSP URI of the
// media profile token.
func GetStreamURI(token string) []byte {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` +
		`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">` +
		`<s:Body xmlns:trt="http://www.onvif.org/ver10/media/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema"><trt:GetStreamUri>` +
		`<trt:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream><tt:Transport><tt:Protocol>RTSP</tt:Protocol></tt:Transport></trt:StreamSetup>` +
		`<trt:ProfileToken>`)
	xml.EscapeText(&b, []byte(token))
	b.WriteString(`</trt:ProfileToken></trt:GetStreamUri></s:Body></s:Envelope>`)
	return []byte(b.String())
}

// Service is one entry of GetServices.
type Service struct {
	Namespace, XAddr string
}

type servicesEnvelope struct {
	XMLName xml.Name
	Body    struct {
		Response *struct {
			Services []Service `xml:"Service"`
		} `xml:"GetServicesResponse"`
		Fault *soapFault `xml:"Fault"`
	} `xml:"Body"`
}

func (e *servicesEnvelope) root() string { return e.XMLName.Local }

// ParseServices reads a GetServices answer: at most maxItems services,
// each string clipped.
func ParseServices(b []byte) ([]Service, error) {
	var env servicesEnvelope
	if err := parseBounded(b, "services", &env); err != nil {
		return nil, err
	}
	if f := env.Body.Fault; f != nil {
		return nil, f.err()
	}
	if env.Body.Response == nil {
		return nil, errors.New("SOAP message holds no GetServicesResponse")
	}
	var out []Service
	for _, s := range env.Body.Response.Services {
		if len(out) == maxItems {
			break
		}
		out = append(out, Service{clip(strings.TrimSpace(s.Namespace)), clip(strings.TrimSpace(s.XAddr))})
	}
	return out, nil
}

// MediaXAddr is the XAddr of the media service among services (the
// ONVIF 1 media service first, then media 2), or "".
func MediaXAddr(services []Service) string {
	for _, ns := range []string{MediaNamespace, Media2Namespace} {
		for _, s := range services {
			if s.Namespace == ns && s.XAddr != "" {
				return s.XAddr
			}
		}
	}
	return ""
}

type capabilitiesEnvelope struct {
	XMLName xml.Name
	Body    struct {
		Response *struct {
			Media struct {
				XAddr string `xml:"XAddr"`
			} `xml:"Capabilities>Media"`
		} `xml:"GetCapabilitiesResponse"`
		Fault *soapFault `xml:"Fault"`
	} `xml:"Body"`
}

func (e *capabilitiesEnvelope) root() string { return e.XMLName.Local }

// ParseCapabilities reads a GetCapabilities answer and returns the media
// service's XAddr ("" when the device names none).
func ParseCapabilities(b []byte) (string, error) {
	var env capabilitiesEnvelope
	if err := parseBounded(b, "capabilities", &env); err != nil {
		return "", err
	}
	if f := env.Body.Fault; f != nil {
		return "", f.err()
	}
	if env.Body.Response == nil {
		return "", errors.New("SOAP message holds no GetCapabilitiesResponse")
	}
	return clip(strings.TrimSpace(env.Body.Response.Media.XAddr)), nil
}

type profilesEnvelope struct {
	XMLName xml.Name
	Body    struct {
		Response *struct {
			Profiles []struct {
				Token string `xml:"token,attr"`
			} `xml:"Profiles"`
		} `xml:"GetProfilesResponse"`
		Fault *soapFault `xml:"Fault"`
	} `xml:"Body"`
}

func (e *profilesEnvelope) root() string { return e.XMLName.Local }

// ParseProfiles reads a GetProfiles answer: the tokens of at most
// maxItems profiles, in the device's order.
func ParseProfiles(b []byte) ([]string, error) {
	var env profilesEnvelope
	if err := parseBounded(b, "profiles", &env); err != nil {
		return nil, err
	}
	if f := env.Body.Fault; f != nil {
		return nil, f.err()
	}
	if env.Body.Response == nil {
		return nil, errors.New("SOAP message holds no GetProfilesResponse")
	}
	var out []string
	for _, p := range env.Body.Response.Profiles {
		if len(out) == maxItems {
			break
		}
		if t := clip(strings.TrimSpace(p.Token)); t != "" {
			out = append(out, t)
		}
	}
	return out, nil
}

type streamURIEnvelope struct {
	XMLName xml.Name
	Body    struct {
		Response *struct {
			URI string `xml:"MediaUri>Uri"`
		} `xml:"GetStreamUriResponse"`
		Fault *soapFault `xml:"Fault"`
	} `xml:"Body"`
}

func (e *streamURIEnvelope) root() string { return e.XMLName.Local }

// ParseStreamURI reads a GetStreamUri answer and returns its URI.
func ParseStreamURI(b []byte) (string, error) {
	var env streamURIEnvelope
	if err := parseBounded(b, "stream URI", &env); err != nil {
		return "", err
	}
	if f := env.Body.Fault; f != nil {
		return "", f.err()
	}
	if env.Body.Response == nil || strings.TrimSpace(env.Body.Response.URI) == "" {
		return "", errors.New("SOAP message holds no GetStreamUriResponse with a URI")
	}
	return clip(strings.TrimSpace(env.Body.Response.URI)), nil
}

// RTSPAddr is the host and port of an rtsp:// URI (554 when it names
// none).
func RTSPAddr(uri string) (host string, port int, err error) {
	u, err := url.Parse(uri)
	if err != nil {
		return "", 0, fmt.Errorf("stream URI: %w", err)
	}
	if !strings.EqualFold(u.Scheme, "rtsp") || u.Hostname() == "" {
		return "", 0, fmt.Errorf("stream URI %q is not rtsp://host", clip(uri))
	}
	port = 554
	if p := u.Port(); p != "" {
		port, err = strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			return "", 0, fmt.Errorf("stream URI %q: bad port", clip(uri))
		}
	}
	host = u.Hostname()
	if net.ParseIP(host) == nil && strings.ContainsAny(host, "/?#@[]% ") {
		return "", 0, fmt.Errorf("stream URI %q: bad host", clip(uri))
	}
	return host, port, nil
}

// parseBounded refuses an answer longer than MaxBody, then decodes it.
func parseBounded(b []byte, what string, env envelope) error {
	if len(b) > MaxBody {
		return fmt.Errorf("%s answer of %d bytes exceeds %d", what, len(b), MaxBody)
	}
	return unmarshal(b, env)
}
