package fuzz

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/nanodems/connector/mux"
)

// FuzzUDPDatagrams reads a UDP relay's stream (mux.FlagUDP): datagram
// frames both ends read from the peer, and the channel-2 ports frame the
// agent trusts to aim datagrams. Every frame read must re-encode to the
// bytes it came from, and nothing may be read past a bad one.
func FuzzUDPDatagrams(f *testing.F) {
	var seed []byte
	seed, _ = mux.AppendDatagram(seed, mux.UDPChannelRTP, []byte{0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1})
	seed, _ = mux.AppendDatagram(seed, mux.UDPChannelRTCP, []byte{0x80, 201, 0, 1, 0, 0, 0, 1})
	seed = mux.AppendUDPPeer(seed, 50000, 50001)
	f.Add(seed)
	f.Add(seed[:len(seed)-1])
	f.Add(mux.AppendUDPPeer(nil, 1, 65535))
	f.Add([]byte{mux.UDPChannelPeer, 0, 4, 0, 0, 0, 0}) // port 0
	f.Add([]byte{mux.UDPChannelPeer, 0, 3, 1, 2, 3})    // short ports
	f.Add([]byte{7, 0, 0})                              // unknown channel, empty
	f.Add([]byte{0, 0xff, 0xff})                        // a full-size frame, truncated
	f.Add([]byte{})

	buf := make([]byte, mux.MaxDatagram)
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		var again []byte
		for {
			before := r.Len()
			ch, n, err := mux.ReadDatagram(r, buf)
			consumed := before - r.Len()
			if err == io.EOF {
				if consumed != 0 {
					t.Fatalf("EOF after consuming %d bytes", consumed)
				}
				break
			}
			if err != nil {
				if !errors.Is(err, mux.ErrBadDatagram) {
					t.Fatalf("error %v does not wrap ErrBadDatagram", err)
				}
				if r.Len() != 0 {
					t.Fatalf("bad frame with %d bytes left unread: a short read must be the end", r.Len())
				}
				break
			}
			if consumed != mux.DatagramHeaderLen+n {
				t.Fatalf("consumed %d bytes for a %d-byte datagram", consumed, n)
			}
			if again, err = mux.AppendDatagram(again, ch, buf[:n]); err != nil {
				t.Fatal(err)
			}
			if ch == mux.UDPChannelPeer {
				rtp, rtcp, err := mux.ParseUDPPeer(buf[:n])
				if err != nil {
					if !errors.Is(err, mux.ErrBadDatagram) {
						t.Fatalf("ParseUDPPeer error %v does not wrap ErrBadDatagram", err)
					}
					continue
				}
				if rtp == 0 || rtcp == 0 {
					t.Fatalf("ParseUDPPeer accepted port 0: %d-%d", rtp, rtcp)
				}
				if p := mux.AppendUDPPeer(nil, rtp, rtcp); !bytes.Equal(p[mux.DatagramHeaderLen:], buf[:n]) {
					t.Fatalf("peer ports re-encode to %x, read %x", p, buf[:n])
				}
			}
		}
		if !bytes.HasPrefix(data, again) {
			t.Fatalf("frames re-encode to %x, not a prefix of the input", again)
		}
	})
}

// FuzzUDPPorts parses the agent's OK status of a UDP relay, which the
// relay turns into a SETUP's client_port: only two ports in 1-65535 may
// pass, and they must print back to the input.
func FuzzUDPPorts(f *testing.F) {
	for _, s := range []string{
		mux.FormatUDPPorts(50000, 50001), mux.FormatUDPPorts(1, 65535), "",
		"client_port=", "client_port=0-1", "client_port=1-65536", "client_port=01-2",
		"client_port=1-2-3", "client_port=-1-2", "server_port=1-2", "client_port=1 -2",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rtp, rtcp, err := mux.ParseUDPPorts(s)
		if err != nil {
			return
		}
		if rtp == 0 || rtcp == 0 {
			t.Fatalf("%q: port 0 accepted", s)
		}
		// Leading zeros are tolerated; the ports themselves must match.
		r2, c2, err := mux.ParseUDPPorts(mux.FormatUDPPorts(rtp, rtcp))
		if err != nil || r2 != rtp || c2 != rtcp {
			t.Fatalf("%q: %d-%d does not round-trip: %d-%d, %v", s, rtp, rtcp, r2, c2, err)
		}
	})
}
