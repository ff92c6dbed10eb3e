package rtsp

import (
	"bytes"
	"strconv"
	"strings"
)

// RewriteSDP applies fn to the URL of every a=control line of an SDP
// body (RFC 4566 §5.13, RFC 2326 §C.1.1) and returns the new body. Only
// lines that change are rebuilt; every other byte, line ends included, is
// kept, so a body without absolute controls comes back identical.
func RewriteSDP(body []byte, fn func(string) string) []byte {
	var out []byte
	rest := body
	pos := 0
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		var line []byte
		if i < 0 {
			line, rest = rest, nil
		} else {
			line, rest = rest[:i+1], rest[i+1:]
		}
		content := bytes.TrimRight(line, "\r\n")
		if v, ok := bytes.CutPrefix(content, []byte("a=control:")); ok {
			if nv := fn(string(v)); nv != string(v) {
				if out == nil {
					out = make([]byte, 0, len(body)+256)
					out = append(out, body[:pos]...)
				}
				out = append(out, "a=control:"...)
				out = append(out, nv...)
				out = append(out, line[len(content):]...)
				pos += len(line)
				continue
			}
		}
		if out != nil {
			out = append(out, line...)
		}
		pos += len(line)
	}
	if out == nil {
		return body
	}
	return out
}

// SDP is what the gateway needs of a session description to hold a
// camera session for many viewers.
type SDP struct {
	Control string // session-level a=control, if any
	Range   string // session-level a=range
	Media   []Media
}

// Media is one m= section.
type Media struct {
	Type    string // video, audio, application, …
	Proto   string // the m= line's transport: RTP/AVP, RTP/AVPF, RTP/SAVP…
	Control string
	// Codecs maps payload types to their a=rtpmap encoding name
	// (upper-cased: H264, H265, JPEG, PCMA, …). Static payload types
	// without rtpmap get their RFC 3551 name.
	Codecs map[int]string
	// Clocks maps payload types to their RTP clock rate in Hz (the
	// a=rtpmap rate, or RFC 3551's for static types): a resumed stream's
	// timestamps advance by the gap at this rate.
	Clocks map[int]int
	// BackChannel is set for a=sendonly media: ONVIF marks the audio
	// backchannel (client to camera) so in the camera's SDP. A shared
	// camera session never carries one: the gateway serves such a request
	// on the client's own camera connection.
	BackChannel bool
}

// ParseSDP reads an SDP body leniently: unknown lines are skipped, and it
// never fails; a body without m= lines has no media.
func ParseSDP(body []byte) SDP {
	var s SDP
	var m *Media
	for _, line := range strings.Split(string(body), "\n") {
		line = strings.TrimRight(line, "\r")
		if len(line) < 2 || line[1] != '=' {
			continue
		}
		switch line[0] {
		case 'm':
			f := strings.Fields(line[2:])
			s.Media = append(s.Media, Media{Codecs: map[int]string{}, Clocks: map[int]int{}})
			m = &s.Media[len(s.Media)-1]
			if len(f) > 0 {
				m.Type = f[0]
			}
			if len(f) > 2 {
				m.Proto = f[2]
			}
			if len(f) > 3 {
				for _, pt := range f[3:] {
					if n, err := strconv.Atoi(pt); err == nil && n >= 0 && n < 128 {
						m.Codecs[n] = staticPayloadName(n)
						if r := staticClock(n); r > 0 {
							m.Clocks[n] = r
						}
					}
				}
			}
		case 'a':
			name, val, _ := strings.Cut(line[2:], ":")
			switch name {
			case "control":
				if m == nil {
					s.Control = val
				} else {
					m.Control = val
				}
			case "range":
				if m == nil {
					s.Range = val
				}
			case "rtpmap":
				if m == nil {
					continue
				}
				pt, enc, _ := strings.Cut(val, " ")
				n, err := strconv.Atoi(strings.TrimSpace(pt))
				if err != nil || n < 0 || n >= 128 {
					continue
				}
				codec, rate, _ := strings.Cut(strings.TrimSpace(enc), "/")
				m.Codecs[n] = strings.ToUpper(codec)
				rate, _, _ = strings.Cut(rate, "/")
				if r, err := strconv.Atoi(rate); err == nil && r > 0 {
					m.Clocks[n] = r
				}
			case "sendonly":
				if m != nil {
					m.BackChannel = true
				}
			}
		}
	}
	return s
}

func staticPayloadName(pt int) string {
	switch pt {
	case 0:
		return "PCMU"
	case 8:
		return "PCMA"
	case 26:
		return "JPEG"
	case 14:
		return "MPA"
	case 32:
		return "MPV"
	case 33:
		return "MP2T"
	}
	return ""
}

// staticClock is the clock rate of a static payload type (RFC 3551
// §6), 0 if unknown.
func staticClock(pt int) int {
	switch pt {
	case 0, 3, 4, 5, 7, 8, 9, 12, 13, 15, 18:
		return 8000
	case 26, 14, 32, 33, 25, 28, 31, 34:
		return 90000
	}
	return 0
}

// IsLive reports whether the description is of a live stream, which
// viewers may share, rather than a recording with a start and an end (an
// NVR's playback URL), which each viewer seeks on its own. Live streams
// announce no range, "npt=0-", "npt=now-" or "npt=0.000-"; recordings an
// end ("npt=0-3600") or absolute clock times.
func (s SDP) IsLive() bool {
	r := strings.TrimSpace(s.Range)
	if r == "" {
		return true
	}
	unit, v, ok := strings.Cut(r, "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "npt") {
		return false
	}
	_, end, _ := strings.Cut(v, "-")
	return strings.TrimSpace(end) == ""
}
