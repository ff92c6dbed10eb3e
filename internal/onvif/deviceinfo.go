package onvif

import (
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
)

// MaxBody bounds a SOAP answer of a device service or media service the
// agent reads (GetDeviceInformation, GetServices, GetProfiles, …).
const MaxBody = 64 << 10

// ErrNeedsLogin is wrapped when the device wants credentials
// (WS-Security) for GetDeviceInformation.
var ErrNeedsLogin = errors.New("device needs login")

// GetDeviceInformation is the SOAP 1.2 request body, and
// GetDeviceInformationAction the action its Content-Type names.
const (
	GetDeviceInformation = `<?xml version="1.0" encoding="UTF-8"?>` +
		`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">` +
		`<s:Body xmlns:tds="http://www.onvif.org/ver10/device/wsdl"><tds:GetDeviceInformation/></s:Body></s:Envelope>`
	GetDeviceInformationAction = "http://www.onvif.org/ver10/device/wsdl/GetDeviceInformation"
)

// DeviceInformation is what GetDeviceInformation answers.
type DeviceInformation struct {
	Manufacturer, Model, FirmwareVersion, SerialNumber, HardwareID string
}

type deviceInfoEnvelope struct {
	XMLName xml.Name
	Body    struct {
		Response *struct {
			Manufacturer    string `xml:"Manufacturer"`
			Model           string `xml:"Model"`
			FirmwareVersion string `xml:"FirmwareVersion"`
			SerialNumber    string `xml:"SerialNumber"`
			HardwareID      string `xml:"HardwareId"`
		} `xml:"GetDeviceInformationResponse"`
		Fault *soapFault `xml:"Fault"`
	} `xml:"Body"`
}

func (e *deviceInfoEnvelope) root() string { return e.XMLName.Local }

// ParseDeviceInformation reads a GetDeviceInformation answer. A SOAP
// fault that says the caller is not authorized wraps ErrNeedsLogin; any
// other fault is an error with its reason.
func ParseDeviceInformation(b []byte) (DeviceInformation, error) {
	if len(b) > MaxBody {
		return DeviceInformation{}, fmt.Errorf("device information of %d bytes exceeds %d", len(b), MaxBody)
	}
	var env deviceInfoEnvelope
	if err := unmarshal(b, &env); err != nil {
		return DeviceInformation{}, err
	}
	if f := env.Body.Fault; f != nil {
		return DeviceInformation{}, f.err()
	}
	r := env.Body.Response
	if r == nil {
		return DeviceInformation{}, errors.New("SOAP message holds no GetDeviceInformationResponse")
	}
	t := func(s string) string { return clip(strings.TrimSpace(s)) }
	return DeviceInformation{t(r.Manufacturer), t(r.Model), t(r.FirmwareVersion), t(r.SerialNumber), t(r.HardwareID)}, nil
}
