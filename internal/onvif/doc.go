// Package onvif speaks the little of ONVIF an agent needs to find cameras
// on its LAN: the WS-Discovery Probe it multicasts, the ProbeMatches
// devices answer with, the device service's GetDeviceInformation, and
// where the media service is and which RTSP port its first profile
// streams on (GetServices or GetCapabilities, GetProfiles, GetStreamUri).
//
// Every parser reads input from whatever answers on the LAN, so each is
// bounded (MaxDatagram, MaxBody, and caps on the lists and strings it
// keeps) and namespace-tolerant: elements are matched by local name, as
// devices disagree on prefixes and even on namespace versions.
package onvif
