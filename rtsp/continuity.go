package rtsp

import (
	"encoding/binary"
	"sync/atomic"
)

// Stream continuity across camera sessions. When a shared camera session
// is lost and opened again (resume.go), the new session numbers its
// packets afresh: another SSRC, a random first sequence number and
// timestamp (or 0 after a camera restart). Viewers keep the RTSP session
// they had, so the stream they see must look like one stream with a gap:
// the sequence number goes on by one, the timestamp advances by the
// wall-clock gap at the track's clock rate, and the SSRC stays the first
// session's. The packet path rewrites each packet once, in place, before
// it is shared: every viewer of a source resumes at the same keyframe,
// so one mapping per track serves them all, and fan-out stays one copy
// per packet however many viewers there are.

// trackClock is one track's numbering as viewers see it. Only the packet
// path touches it, except ssrc, which the give-up path reads for BYE.
type trackClock struct {
	ssrc    atomic.Uint32 // the SSRC viewers see: the first session's
	seen    bool          // a packet went out; last* hold its numbers
	lastSeq uint16
	lastTS  uint32
	lastAt  int64 // unix nanos the last packet went out
	// remap: the next RTP packet is the first of a new camera session
	// (a keyframe); the offsets are set from it.
	remap  bool
	mapped bool // offsets set: rewrite every packet
	seqOff uint16
	tsOff  uint32
}

// rtp rewrites an RTP packet of the track in place and records its
// numbers.
func (tc *trackClock) rtp(b []byte, now int64, tr *srcTrack) {
	if len(b) < 12 {
		return
	}
	seq := binary.BigEndian.Uint16(b[2:4])
	ts := binary.BigEndian.Uint32(b[4:8])
	if !tc.seen {
		tc.ssrc.Store(binary.BigEndian.Uint32(b[8:12]))
	}
	if tc.remap {
		tc.remap = false
		if tc.seen {
			tc.seqOff = tc.lastSeq + 1 - seq
			gap := max(now-tc.lastAt, 0)
			ticks := uint32(uint64(gap) * uint64(tr.clock(int(b[1]&0x7f))) / 1e9)
			tc.tsOff = tc.lastTS + max(ticks, 1) - ts
			tc.mapped = true
		}
	}
	if tc.mapped {
		seq += tc.seqOff
		ts += tc.tsOff
		binary.BigEndian.PutUint16(b[2:4], seq)
		binary.BigEndian.PutUint32(b[4:8], ts)
		binary.BigEndian.PutUint32(b[8:12], tc.ssrc.Load())
	}
	tc.seen, tc.lastSeq, tc.lastTS, tc.lastAt = true, seq, ts, now
}

// rtcp rewrites a camera RTCP packet of the track in place; false: do
// not forward it.
func (tc *trackClock) rtcp(b []byte) bool {
	if tc.remap {
		return false // its RTP timestamps are of a mapping not known yet
	}
	return ContinueRTCP(b, tc.ssrc.Load(), tc.tsOff, tc.mapped)
}

// RTCP packet types (RFC 3550 §12.1).
const (
	rtcpSR  = 200
	rtcpRR  = 201
	rtcpBYE = 203
)

// ContinueRTCP prepares a camera's compound RTCP packet (RFC 3550 §6.1)
// for viewers of a resumed stream, in place. With remap, a sender
// report's SSRC becomes ssrc and its RTP timestamp moves by tsOff, so
// it maps wall clock to the timestamps viewers see. It reports false for
// a packet not to forward: a malformed one, or one with a BYE, which
// would end a player's stream (ffmpeg ends at a BYE on every track) while
// the gateway means to resume it; the gateway sends its own BYE when it
// gives up.
func ContinueRTCP(b []byte, ssrc, tsOff uint32, remap bool) bool {
	if len(b) < 4 {
		return false
	}
	for len(b) > 0 {
		if len(b) < 4 || b[0]>>6 != 2 {
			return false
		}
		n := 4 * (int(binary.BigEndian.Uint16(b[2:4])) + 1)
		if n > len(b) {
			return false
		}
		switch b[1] {
		case rtcpBYE:
			return false
		case rtcpSR:
			if remap && n >= 20 {
				binary.BigEndian.PutUint32(b[4:8], ssrc)
				binary.BigEndian.PutUint32(b[16:20], binary.BigEndian.Uint32(b[16:20])+tsOff)
			}
		}
		b = b[n:]
	}
	return true
}

// rtcpBye is the end of a track for a viewer: an empty receiver report
// (a compound packet starts with one, RFC 3550 §6.1) and a BYE, both of
// the SSRC the viewer saw.
func rtcpBye(ssrc uint32) []byte {
	b := make([]byte, 16)
	b[0], b[1], b[3] = 0x80, rtcpRR, 1
	binary.BigEndian.PutUint32(b[4:8], ssrc)
	b[8], b[9], b[11] = 0x81, rtcpBYE, 1
	binary.BigEndian.PutUint32(b[12:16], ssrc)
	return b
}
