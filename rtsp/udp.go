package rtsp

import (
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
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
// The sockets are plain net.UDPConns on the standard netpoller, in both
// listener modes: they are per track and carry datagrams, not the many
// idle TCP connections gnet is for.
type udpPair struct {
	g         *Gateway
	rtp, rtcp *net.UDPConn
	dst       udpDest
	// Where packets go: the client's ports, or where its packets came
	// from once it has sent some (a NAT between client and relay maps its
	// ports, and clients send "punch" packets to the server ports for
	// exactly this reason).
	rtpTo, rtcpTo atomic.Pointer[net.UDPAddr]
	onRTCP        func([]byte)
	closed        atomic.Bool
}

func newUDPPair(g *Gateway, localIP net.IP, dst udpDest) (*udpPair, error) {
	p := &udpPair{g: g, dst: dst}
	var err error
	p.rtp, p.rtcp, err = listenUDPPair(localIP)
	if err != nil {
		return nil, fmt.Errorf("UDP ports for the client: %w", err)
	}
	for _, c := range []*net.UDPConn{p.rtp, p.rtcp} {
		c.SetWriteBuffer(1 << 20) // a keyframe burst, not a drop
	}
	p.rtpTo.Store(&net.UDPAddr{IP: dst.ip, Port: dst.rtp})
	p.rtcpTo.Store(&net.UDPAddr{IP: dst.ip, Port: dst.rtcp})
	return p, nil
}

// listenUDPPair binds two UDP sockets, even and odd consecutive ports if
// it can find them in a few tries, else any two.
func listenUDPPair(ip net.IP) (*net.UDPConn, *net.UDPConn, error) {
	for range 16 {
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
	p.g.goFn(func() { p.read(p.rtp, &p.rtpTo, nil) })
	p.g.goFn(func() { p.read(p.rtcp, &p.rtcpTo, p.onRTCP) })
}

func (p *udpPair) read(c *net.UDPConn, to *atomic.Pointer[net.UDPAddr], fn func([]byte)) {
	buf := make([]byte, 2048)
	for {
		n, from, err := c.ReadFromUDP(buf)
		if err != nil {
			return
		}
		// Only the client itself steers where its packets go.
		if !from.IP.Equal(p.dst.ip) {
			continue
		}
		if cur := to.Load(); cur.Port != from.Port || !cur.IP.Equal(from.IP) {
			to.Store(from)
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
		p.rtcp.WriteToUDP(b, p.rtcpTo.Load())
	} else {
		p.rtp.WriteToUDP(b, p.rtpTo.Load())
	}
}

func (p *udpPair) close() {
	if p.closed.CompareAndSwap(false, true) {
		p.rtp.Close()
		p.rtcp.Close()
	}
}
