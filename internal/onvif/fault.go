package onvif

import (
	"fmt"
	"strings"
)

// soapFault is a SOAP 1.2 Fault (Code, Subcodes, Reason) or a SOAP 1.1
// one (faultcode, faultstring), as devices send either.
type soapFault struct {
	Code struct {
		Value   string `xml:"Value"`
		Subcode struct {
			Value   string `xml:"Value"`
			Subcode struct {
				Value string `xml:"Value"`
			} `xml:"Subcode"`
		} `xml:"Subcode"`
	} `xml:"Code"`
	Reason struct {
		Text string `xml:"Text"`
	} `xml:"Reason"`
	FaultCode   string `xml:"faultcode"`
	FaultString string `xml:"faultstring"`
}

// err is the fault as an error: one that says the caller is not
// authorized wraps ErrNeedsLogin; any other carries its codes and reason.
func (f *soapFault) err() error {
	codes := strings.Join([]string{f.Code.Value, f.Code.Subcode.Value, f.Code.Subcode.Subcode.Value, f.FaultCode}, " ")
	reason := clip(strings.TrimSpace(f.Reason.Text + f.FaultString))
	if strings.Contains(codes, "NotAuthorized") || strings.Contains(codes, "FailedAuthentication") {
		return fmt.Errorf("%w: %s", ErrNeedsLogin, reason)
	}
	return fmt.Errorf("SOAP fault %s: %s", clip(strings.TrimSpace(codes)), reason)
}
