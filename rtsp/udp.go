package rtsp

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/nanodems/connector/internal/udpbuf"
)

// udpDest is where a UDP client wants a track: its IP (always the
// control connection's) and its RTP and RTCP ports.
type udpDest struct {
	ip        net.IP
	rtp, rtcp int
}

// udpPair is the gateway's side of one UDP track to a client: an RTP and
// an RTCP socket (on consecutive ports, even first, where the system
// allows, as RFC 3550 §11 recommends and some clients assume), sending to
// the client and reading its RTCP.
//
// Packets go to the ports the client announced in SETUP (client_port or
// dest_addr) and nowhere else, and only datagrams from those ports are
// taken. The pair does no "symmetric RTP" latching (sending to wherever
// the client's datagrams come from): the server ports are announced and
// scannable, and behind a shared or carrier-grade NAT, or on the same
// host, the client's IP is also everyone else's, so one datagram from
// another port of that IP would move the stream there for good. Nor can
// latching be bounded usefully: a client behind a port-changing NAT has
// received nothing, so its RTCP carries no report block that would prove
// it the stream's receiver, and "the first packet wins" races the
// attacker. Such a client gets no UDP and does what players do when
// nothing arrives: ffmpeg, VLC and GStreamer retry over TCP, which the
// gateway serves on the same connection.
//
// The sockets are plain net.UDPConns on the standard netpoller, in both
// listener modes: they are per track and carry datagrams, not the many
// idle TCP connections gnet is for.
type udpPair struct {
	g             *Gateway
	rtp, rtcp     *net.UDPConn
	dst           udpDest
	rtpTo, rtcpTo *net.UDPAddr // the client's announced ports
	from          [2]netip.AddrPort
	onRTCP        func([]byte)
	strangers     atomic.Uint64 // datagrams from other ports, dropped
	closed        atomic.Bool
}

func newUDPPair(g *Gateway, localIP net.IP, dst udpDest) (*udpPair, error) {
	p := &udpPair{g: g, dst: dst}
	var err error
	p.rtp, p.rtcp, err = listenUDPPair(localIP)
	if err != nil {
		return nil, fmt.Errorf("UDP ports for the client: %w", err)
	}
	// A keyframe is a burst of a few hundred KiB written at once: the
	// send buffer takes it rather than the sender waiting on it.
	sizeSendBuffer(g, p.rtp)
	p.rtpTo = &net.UDPAddr{IP: dst.ip, Port: dst.rtp}
	p.rtcpTo = &net.UDPAddr{IP: dst.ip, Port: dst.rtcp}
	ip, _ := netip.AddrFromSlice(dst.ip)
	ip = ip.Unmap()
	p.from = [2]netip.AddrPort{netip.AddrPortFrom(ip, uint16(dst.rtp)), netip.AddrPortFrom(ip, uint16(dst.rtcp))}
	return p, nil
}

// sendBufferNote logs once per process what the system left of the
// send buffer asked for, when it capped it.
var sendBufferNote sync.Once

func sizeSendBuffer(g *Gateway, c *net.UDPConn) {
	got, err := udpbuf.Size(c, udpbuf.Send, udpbuf.Video)
	if err == nil && got >= udpbuf.Video {
		return
	}
	sendBufferNote.Do(func() {
		g.log.Warn("rtsp: UDP send buffers to clients are smaller than asked; raise net.core.wmem_max",
			"asked", udpbuf.Video, "got", got, "err", err)
	})
}

// pairTries bounds the attempts at consecutive even/odd ports. Worth
// many: ffmpeg sends its RTCP (and NAT punches) to server_port's first
// number + 1 whatever the second says, so with two unrelated ports its
// receiver reports land on whichever socket holds that port, another
// client's perhaps. Each try fails with a chance of about one half (an
// odd port), so 64 make the fallback practically never happen.
const pairTries = 64

// listenUDPPair binds two UDP sockets, even and odd consecutive ports if
// it can find them in pairTries tries, else any two.
func listenUDPPair(ip net.IP) (*net.UDPConn, *net.UDPConn, error) {
	for range pairTries {
		a, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
		if err != nil {
			return nil, nil, err
		}
		port := a.LocalAddr().(*net.UDPAddr).Port
		if port%2 == 0 && port < 65535 {
			if b, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port + 1}); err == nil {
				return a, b, nil
			}
		}
		a.Close()
	}
	a, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
	if err != nil {
		return nil, nil, err
	}
	b, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
	if err != nil {
		a.Close()
		return nil, nil, err
	}
	return a, b, nil
}

func (p *udpPair) rtpPort() int  { return p.rtp.LocalAddr().(*net.UDPAddr).Port }
func (p *udpPair) rtcpPort() int { return p.rtcp.LocalAddr().(*net.UDPAddr).Port }

func (p *udpPair) localRTP() string {
	return net.JoinHostPort(p.rtp.LocalAddr().(*net.UDPAddr).IP.String(), strconv.Itoa(p.rtpPort()))
}

func (p *udpPair) localRTCP() string {
	return net.JoinHostPort(p.rtcp.LocalAddr().(*net.UDPAddr).IP.String(), strconv.Itoa(p.rtcpPort()))
}

// start runs the readers of both sockets.
func (p *udpPair) start() {
	p.g.goFn(func() { p.read(p.rtp, nil) })
	p.g.goFn(func() { p.read(p.rtcp, p.onRTCP) })
}

// read takes the client's datagrams to one socket: on the RTP port the
// "punch" packets clients send to open their NAT (nothing to do), on the
// RTCP port its receiver reports. Either may come from either of the
// client's announced ports (some clients send RTCP from their RTP
// socket; RFC 5761 multiplexes both on one). Datagrams from any other
// address or port are dropped and counted.
func (p *udpPair) read(c *net.UDPConn, fn func([]byte)) {
	buf := make([]byte, 2048)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if s := p.strangers.Load(); s > 0 && c == p.rtcp {
				p.g.log.Info("rtsp: dropped datagrams to a UDP client's server ports from other ports than it announced",
					"client", p.rtpTo.IP.String(), "dropped", s)
			}
			return
		}
		if from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port()); from != p.from[0] && from != p.from[1] {
			p.strangers.Add(1)
			p.g.stats.UDPStrangers.Add(1)
			continue
		}
		if fn != nil && n > 0 {
			fn(buf[:n])
		}
	}
}

// send sends one packet; errors (the client's port closed) are dropped,
// as UDP does.
func (p *udpPair) send(rtcp bool, b []byte) {
	if rtcp {
		p.rtcp.WriteToUDP(b, p.rtcpTo)
	} else {
		p.rtp.WriteToUDP(b, p.rtpTo)
	}
}

func (p *udpPair) close() {
	if p.closed.CompareAndSwap(false, true) {
		p.rtp.Close()
		p.rtcp.Close()
	}
}
