// Package onviftest is an ONVIF device simulator for tests: it answers
// WS-Discovery Probes on a multicast group as the ONVIF discovery spec
// says (a unicast ProbeMatches, from the device's own address, relating
// to the Probe's MessageID, after a short random delay), serves
// GetDeviceInformation, GetServices and GetCapabilities on the device
// service and GetProfiles and GetStreamUri on the media service, and
// serves a small web page at / so a tunnel to the camera has something to
// show.
package onviftest

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"html"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Device is one simulated camera.
type Device struct {
	IP       netip.Addr
	HTTPPort int // the device service and the web page
	UUID     string
	Name     string // scope onvif://www.onvif.org/name/…
	Hardware string // scope onvif://www.onvif.org/hardware/…

	Manufacturer, Model string // GetDeviceInformation
	// NeedsLogin: GetDeviceInformation, GetProfiles and GetStreamUri
	// answer a NotAuthorized fault, as a device that wants WS-Security
	// does; GetServices and GetCapabilities, which ONVIF lets anyone
	// call, are still answered.
	NeedsLogin bool
	// MediaPort is where the media service listens (0: HTTPPort), and
	// RTSPPort the port of the stream URI it hands out (0: 554).
	MediaPort, RTSPPort int
	// NoGetServices: the device service faults GetServices, as a device
	// older than ONVIF 2.0 does, and names its media service only in
	// GetCapabilities.
	NoGetServices bool
}

func (d Device) mediaPort() int {
	if d.MediaPort != 0 {
		return d.MediaPort
	}
	return d.HTTPPort
}

func (d Device) rtspPort() int {
	if d.RTSPPort != 0 {
		return d.RTSPPort
	}
	return 554
}

// Responder runs the devices until Close.
type Responder struct {
	mc      *net.UDPConn
	replies []*net.UDPConn
	servers []*http.Server
	devs    []Device
	wg      sync.WaitGroup

	mu     sync.Mutex
	probes int // Probes answered
}

// Start listens for Probes on interface ifname and serves each device on
// its address. do makes the sockets (a network namespace's Do, or a
// plain call).
func Start(do func(func() error) error, ifname string, devs []Device) (*Responder, error) {
	r := &Responder{devs: devs}
	var lns []net.Listener
	var lnDev []int // the device of each listener
	err := do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		r.mc, err = net.ListenMulticastUDP("udp4", ifi, &net.UDPAddr{IP: net.IPv4(239, 255, 255, 250), Port: 3702})
		if err != nil {
			return fmt.Errorf("join WS-Discovery group on %s: %w", ifname, err)
		}
		for _, d := range devs {
			rc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: d.IP.AsSlice()})
			if err != nil {
				return err
			}
			r.replies = append(r.replies, rc)
			ports := []int{d.HTTPPort}
			if d.mediaPort() != d.HTTPPort {
				ports = append(ports, d.mediaPort())
			}
			for _, port := range ports {
				ln, err := net.Listen("tcp", netip.AddrPortFrom(d.IP, uint16(port)).String())
				if err != nil {
					return err
				}
				lns = append(lns, ln)
				lnDev = append(lnDev, len(r.replies)-1)
			}
		}
		return nil
	})
	if err != nil {
		r.Close()
		for _, ln := range lns {
			ln.Close()
		}
		return nil, err
	}
	for i, ln := range lns {
		srv := &http.Server{Handler: devs[lnDev[i]].handler(), ReadHeaderTimeout: 5 * time.Second}
		r.servers = append(r.servers, srv)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			srv.Serve(ln)
		}()
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.answer()
	}()
	return r, nil
}

// Probes is how many Probes the responder answered.
func (r *Responder) Probes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.probes
}

// Close stops every device and waits for its goroutines.
func (r *Responder) Close() {
	if r.mc != nil {
		r.mc.Close()
	}
	for _, s := range r.servers {
		s.Close()
	}
	r.wg.Wait()
	for _, rc := range r.replies {
		rc.Close()
	}
}

type probeEnvelope struct {
	Header struct {
		MessageID string `xml:"MessageID"`
		Action    string `xml:"Action"`
	} `xml:"Header"`
	Body struct {
		Probe *struct {
			Types string `xml:"Types"`
		} `xml:"Probe"`
	} `xml:"Body"`
}

func (r *Responder) answer() {
	buf := make([]byte, 64<<10)
	var sends sync.WaitGroup
	defer sends.Wait()
	for {
		n, from, err := r.mc.ReadFromUDP(buf)
		if err != nil {
			return
		}
		var env probeEnvelope
		if xml.Unmarshal(buf[:n], &env) != nil || env.Body.Probe == nil || env.Header.MessageID == "" {
			continue
		}
		// A device matches a Probe with no Types or one that names
		// one of its types.
		if t := strings.TrimSpace(env.Body.Probe.Types); t != "" && !strings.Contains(t, "NetworkVideoTransmitter") && !strings.HasSuffix(t, ":Device") {
			continue
		}
		r.mu.Lock()
		r.probes++
		r.mu.Unlock()
		for i, d := range r.devs {
			msg := d.probeMatch(env.Header.MessageID)
			rc := r.replies[i]
			sends.Add(1)
			go func() {
				defer sends.Done()
				// APP_MAX_DELAY: answers are spread so a LAN of
				// cameras does not answer in one burst.
				time.Sleep(rand.N(50 * time.Millisecond))
				rc.WriteToUDP(msg, from)
			}()
		}
	}
}

func (d Device) xaddr() string {
	return fmt.Sprintf("http://%s/onvif/device_service", netip.AddrPortFrom(d.IP, uint16(d.HTTPPort)))
}

func (d Device) probeMatch(relatesTo string) []byte {
	esc := html.EscapeString
	var b bytes.Buffer
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:dn="http://www.onvif.org/ver10/network/wsdl" xmlns:tds="http://www.onvif.org/ver10/device/wsdl">
<SOAP-ENV:Header><wsa:MessageID>uuid:%s-%d</wsa:MessageID><wsa:RelatesTo>%s</wsa:RelatesTo><wsa:To SOAP-ENV:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:To><wsa:Action SOAP-ENV:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</wsa:Action><d:AppSequence InstanceId="1" MessageNumber="1"/></SOAP-ENV:Header>
<SOAP-ENV:Body><d:ProbeMatches><d:ProbeMatch><wsa:EndpointReference><wsa:Address>urn:uuid:%s</wsa:Address></wsa:EndpointReference><d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types><d:Scopes>onvif://www.onvif.org/type/video_encoder onvif://www.onvif.org/Profile/Streaming onvif://www.onvif.org/name/%s onvif://www.onvif.org/hardware/%s onvif://www.onvif.org/location/country/nowhere</d:Scopes><d:XAddrs>%s</d:XAddrs><d:MetadataVersion>1</d:MetadataVersion></d:ProbeMatch></d:ProbeMatches></SOAP-ENV:Body></SOAP-ENV:Envelope>`,
		esc(d.UUID), rand.Int64(), esc(relatesTo), esc(d.UUID), esc(pathEscape(d.Name)), esc(pathEscape(d.Hardware)), esc(d.xaddr()))
	return b.Bytes()
}

// pathEscape escapes a scope's value as devices do: spaces as %20.
func pathEscape(s string) string { return strings.ReplaceAll(s, " ", "%20") }

func (d Device) handler() http.Handler {
	m := http.NewServeMux()
	esc := html.EscapeString
	m.HandleFunc("POST /onvif/device_service", func(w http.ResponseWriter, r *http.Request) {
		op, _ := operation(r.Body)
		w.Header().Set("Content-Type", "application/soap+xml; charset=utf-8")
		switch {
		case op == "GetDeviceInformation" && d.NeedsLogin:
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, fault("ter:NotAuthorized", "Sender not Authorized"))
		case op == "GetDeviceInformation":
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:tds="http://www.onvif.org/ver10/device/wsdl"><env:Body><tds:GetDeviceInformationResponse><tds:Manufacturer>%s</tds:Manufacturer><tds:Model>%s</tds:Model><tds:FirmwareVersion>1.0</tds:FirmwareVersion><tds:SerialNumber>%s</tds:SerialNumber><tds:HardwareId>%s</tds:HardwareId></tds:GetDeviceInformationResponse></env:Body></env:Envelope>`,
				esc(d.Manufacturer), esc(d.Model), esc(d.UUID), esc(d.Hardware))
		case op == "GetServices" && !d.NoGetServices:
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema"><SOAP-ENV:Body><tds:GetServicesResponse>`+
				`<tds:Service><tds:Namespace>http://www.onvif.org/ver10/device/wsdl</tds:Namespace><tds:XAddr>%s</tds:XAddr><tds:Version><tt:Major>2</tt:Major><tt:Minor>40</tt:Minor></tds:Version></tds:Service>`+
				`<tds:Service><tds:Namespace>http://www.onvif.org/ver10/media/wsdl</tds:Namespace><tds:XAddr>%s</tds:XAddr><tds:Version><tt:Major>2</tt:Major><tt:Minor>40</tt:Minor></tds:Version></tds:Service>`+
				`</tds:GetServicesResponse></SOAP-ENV:Body></SOAP-ENV:Envelope>`, esc(d.xaddr()), esc(d.mediaXAddr()))
		case op == "GetCapabilities":
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema"><env:Body><tds:GetCapabilitiesResponse><tds:Capabilities>`+
				`<tt:Media><tt:XAddr>%s</tt:XAddr><tt:StreamingCapabilities><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP></tt:StreamingCapabilities></tt:Media>`+
				`</tds:Capabilities></tds:GetCapabilitiesResponse></env:Body></env:Envelope>`, esc(d.mediaXAddr()))
		default:
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, fault("ter:ActionNotSupported", "not simulated"))
		}
	})
	m.HandleFunc("POST /onvif/media", func(w http.ResponseWriter, r *http.Request) {
		op, token := operation(r.Body)
		w.Header().Set("Content-Type", "application/soap+xml; charset=utf-8")
		switch {
		case (op == "GetProfiles" || op == "GetStreamUri") && d.NeedsLogin:
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, fault("ter:NotAuthorized", "Sender not Authorized"))
		case op == "GetProfiles":
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:trt="http://www.onvif.org/ver10/media/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema"><s:Body><trt:GetProfilesResponse>`+
				`<trt:Profiles token="Profile_1" fixed="true"><tt:Name>mainStream</tt:Name></trt:Profiles><trt:Profiles token="Profile_2" fixed="true"><tt:Name>subStream</tt:Name></trt:Profiles>`+
				`</trt:GetProfilesResponse></s:Body></s:Envelope>`)
		case op == "GetStreamUri" && token == "Profile_1":
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:trt="http://www.onvif.org/ver10/media/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema"><s:Body><trt:GetStreamUriResponse><trt:MediaUri>`+
				`<tt:Uri>%s</tt:Uri><tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout>`+
				`</trt:MediaUri></trt:GetStreamUriResponse></s:Body></s:Envelope>`, esc(fmt.Sprintf("rtsp://%s/Streaming/Channels/101?transportmode=unicast&profile=Profile_1", netip.AddrPortFrom(d.IP, uint16(d.rtspPort())))))
		case op == "GetStreamUri":
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, fault("ter:NoProfile", "no such profile"))
		default:
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, fault("ter:ActionNotSupported", "not simulated"))
		}
	})
	m.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><title>%s</title><h1 id=camera>Camera %s</h1>", html.EscapeString(d.Name), html.EscapeString(d.Name))
	})
	return m
}

func (d Device) mediaXAddr() string {
	return fmt.Sprintf("http://%s/onvif/media", netip.AddrPortFrom(d.IP, uint16(d.mediaPort())))
}

// operation is the local name of the first element in a SOAP request's
// Body, and the text of a ProfileToken in it, if any.
func operation(body io.Reader) (op, token string) {
	dec := xml.NewDecoder(io.LimitReader(body, 64<<10))
	inBody, inToken := false, false
	for {
		tok, err := dec.Token()
		if err != nil {
			return op, token
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch {
			case t.Name.Local == "Body":
				inBody = true
			case inBody && op == "":
				op = t.Name.Local
			case t.Name.Local == "ProfileToken":
				inToken = true
			}
		case xml.CharData:
			if inToken {
				token += string(t)
			}
		case xml.EndElement:
			inToken = false
		}
	}
}

func fault(subcode, reason string) string {
	return `<?xml version="1.0" encoding="UTF-8"?><env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:ter="http://www.onvif.org/ver10/error"><env:Body><env:Fault><env:Code><env:Value>env:Sender</env:Value><env:Subcode><env:Value>` +
		subcode + `</env:Value></env:Subcode></env:Code><env:Reason><env:Text xml:lang="en">` + reason + `</env:Text></env:Reason></env:Fault></env:Body></env:Envelope>`
}
