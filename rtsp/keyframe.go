package rtsp

import "encoding/binary"

// rtpPayload returns the payload type and payload of an RTP packet
// (RFC 3550 §5.1), or ok=false if it is too short to be one.
func rtpPayload(p []byte) (pt int, payload []byte, ok bool) {
	if len(p) < 12 || p[0]>>6 != 2 {
		return 0, nil, false
	}
	n := 12 + 4*int(p[0]&0x0f)
	if p[0]&0x10 != 0 { // header extension
		if len(p) < n+4 {
			return 0, nil, false
		}
		n += 4 + 4*int(binary.BigEndian.Uint16(p[n+2:n+4]))
	}
	if len(p) < n {
		return 0, nil, false
	}
	return int(p[1] & 0x7f), p[n:], true
}

// startsKeyframe reports whether an RTP packet of the given codec is a
// point a decoder can start at: where a viewer that joins a shared camera
// session, or one that fell behind and was skipped ahead, resumes. For
// codecs without inter-frame prediction (audio, unknown) every packet is.
//
// H.264 (RFC 6184) and H.265 (RFC 7798): a parameter set (SPS, or VPS for
// H.265), which cameras send right before each IDR, or the first packet of
// an IDR (H.265: any IRAP picture) NAL unit, single, aggregated or the
// start fragment. JPEG (RFC 2435): fragment offset 0, the start of a frame.
func startsKeyframe(codec string, payload []byte) bool {
	switch codec {
	case "H264":
		return h264Keyframe(payload)
	case "H265", "HEVC":
		return h265Keyframe(payload)
	case "JPEG":
		return len(payload) >= 4 && payload[1] == 0 && payload[2] == 0 && payload[3] == 0
	}
	return true
}

// videoCodec reports whether the gateway knows where the codec's
// keyframes are, i.e. whether a viewer must wait for one.
func videoCodec(codec string) bool {
	switch codec {
	case "H264", "H265", "HEVC", "JPEG":
		return true
	}
	return false
}

func h264Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	isKey := func(t byte) bool { return t == 5 || t == 7 }
	switch t := p[0] & 0x1f; {
	case t >= 1 && t <= 23:
		return isKey(t)
	case t == 24: // STAP-A: [size u16][NAL]…
		for q := p[1:]; len(q) >= 3; {
			n := int(binary.BigEndian.Uint16(q))
			if n == 0 || len(q) < 2+n {
				return false
			}
			if isKey(q[2] & 0x1f) {
				return true
			}
			q = q[2+n:]
		}
	case t == 28: // FU-A: indicator, header (S bit, type)
		return len(p) >= 2 && p[1]&0x80 != 0 && isKey(p[1]&0x1f)
	}
	return false
}

func h265Keyframe(p []byte) bool {
	if len(p) < 2 {
		return false
	}
	isKey := func(t byte) bool { return t >= 16 && t <= 21 || t == 32 || t == 33 }
	switch t := (p[0] >> 1) & 0x3f; {
	case t < 48:
		return isKey(t)
	case t == 48: // AP: [size u16][NAL]…
		for q := p[2:]; len(q) >= 4; {
			n := int(binary.BigEndian.Uint16(q))
			if n < 2 || len(q) < 2+n {
				return false
			}
			if isKey((q[2] >> 1) & 0x3f) {
				return true
			}
			q = q[2+n:]
		}
	case t == 49: // FU: 2-byte header, FU header (S bit, type)
		return len(p) >= 3 && p[2]&0x80 != 0 && isKey(p[2]&0x3f)
	}
	return false
}
