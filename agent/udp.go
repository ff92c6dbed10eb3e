package agent

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xtaci/smux"

	"github.com/nanodems/connector/internal/udpbuf"
	"github.com/nanodems/connector/mux"
)

// UDP relays (mux.FlagUDP). Some cameras stream RTP only over UDP and
// answer 461 to the interleaved TCP the tunnel can carry. For those the
// relay's RTSP gateway opens a second stream with FlagUDP: the agent binds
// an RTP/RTCP port pair on the LAN (the camera's client_port), and
// carries the datagrams in-band on the stream, framed (mux.ReadDatagram).
// The RTSP conversation itself stays on its own TCP tunnel; the agent
// never reads it.
//
// Datagrams are taken only from the target host's address: the pair
// listens on every interface, and anyone on the LAN could otherwise
// inject packets into a stream an operator watches. Datagrams from the
// relay go only to that address too, so the relay reaches nothing the
// allowlist does not name.

// udpPairTries bounds the attempts at an even/odd port pair: RFC 3550
// §11 asks for it and some cameras assume it (they send RTCP to the RTP
// port + 1 whatever client_port says), but a busy system may not have one
// soon, and any two ports then do for the others.
const udpPairTries = 16

// serveUDP answers a FlagUDP stream whose target passed the allowlist.
// It returns when the stream or a socket ends (the relay closed it, the
// allowlist dropped the target, the session died).
func (a *Agent) serveUDP(st *smux.Stream, h mux.Header) {
	target := net.JoinHostPort(h.Host, strconv.Itoa(int(h.Port)))
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.DialTimeout)
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", h.Host)
	cancel()
	if err != nil || len(addrs) == 0 {
		if err == nil {
			err = fmt.Errorf("%s has no address", h.Host)
		}
		mux.WriteStatus(st, classify(err), fmt.Sprintf("UDP relay to %s: %v", target, err))
		return
	}
	// Only the addresses the agent may reach: datagrams go to these alone.
	var refused error
	allowed := addrs[:0]
	for _, ad := range addrs {
		ad = ad.Unmap()
		if err := a.checkAddr(ad); err != nil {
			refused = cmp.Or(refused, err)
			continue
		}
		allowed = append(allowed, ad)
	}
	if addrs = allowed; len(addrs) == 0 {
		reason := "UDP relay: " + refused.(*localTargetError).reason(h.Host)
		a.log.Warn("refusing local target", "target", target, "reason", reason)
		mux.WriteStatus(st, mux.NotAllowed, reason)
		return
	}
	network := "udp6"
	if addrs[0].Is4() {
		network = "udp4"
	}
	rtp, rtcp, err := listenUDPPair(network)
	if err != nil {
		mux.WriteStatus(st, mux.AgentError, fmt.Sprintf("UDP relay to %s: bind: %v", target, err))
		return
	}
	u := &udpRelay{log: a.log.With("target", target), stream: mux.NewStream(st), rtp: rtp, rtcp: rtcp, allowed: addrs, lost: &a.udpDrops}
	u.sizeBuffers()
	if err := mux.WriteStatus(st, mux.OK, mux.FormatUDPPorts(u.ports())); err != nil {
		u.close()
		return
	}
	a.tunnels.Add(1)
	a.active.Add(1)
	defer a.active.Add(-1)
	// A live tunnel like any other: counted in the heartbeat, ended by
	// cutDisallowed (closing conn ends the relay), movable to a dedicated
	// connection (the stream does not care what it carries).
	t := &liveTunnel{target: mux.Target{Host: h.Host, Port: h.Port}, conn: udpRelayConn{rtp, u}, stream: u.stream, lastAt: time.Now()}
	a.live.Store(t, struct{}{})
	defer func() {
		a.live.Delete(t)
		a.bytesIn.Add(t.in.Load())
		a.bytesOut.Add(t.out.Load())
	}()
	u.log.Debug("UDP relay open", "rtp_port", rtp.LocalAddr().(*net.UDPAddr).Port, "rtcp_port", rtcp.LocalAddr().(*net.UDPAddr).Port)
	u.run(&t.in, &t.out)
	if n := u.dropped.Load(); n > 0 {
		u.log.Info("UDP relay closed; dropped datagrams from other addresses", "dropped", n)
	}
}

// listenUDPPair binds two UDP sockets on every interface of the family,
// even and odd consecutive ports if it finds them in udpPairTries
// attempts, else any two.
func listenUDPPair(network string) (*net.UDPConn, *net.UDPConn, error) {
	for range udpPairTries {
		a, err := net.ListenUDP(network, nil)
		if err != nil {
			return nil, nil, err
		}
		port := a.LocalAddr().(*net.UDPAddr).Port
		if port%2 == 0 && port < 65535 {
			if b, err := net.ListenUDP(network, &net.UDPAddr{Port: port + 1}); err == nil {
				return a, b, nil
			}
		}
		a.Close()
	}
	a, err := net.ListenUDP(network, nil)
	if err != nil {
		return nil, nil, err
	}
	b, err := net.ListenUDP(network, nil)
	if err != nil {
		a.Close()
		return nil, nil, err
	}
	return a, b, nil
}

// udpRelay is one FlagUDP stream's LAN side.
type udpRelay struct {
	log       *slog.Logger
	stream    *mux.Stream
	rtp, rtcp *net.UDPConn
	allowed   []netip.Addr // the target host's addresses

	// Where datagrams of the relay go, per channel (RTP, RTCP): the
	// camera's server ports once the relay names them, until then the
	// port the camera's last datagram on that socket came from.
	peer  [2]atomic.Pointer[netip.AddrPort]
	fixed atomic.Bool // the relay named the ports: sources no longer steer

	wmu     sync.Mutex // one datagram frame at a time on the stream
	dropped atomic.Uint64
	lost    *atomic.Uint64 // the agent's count of datagrams full buffers dropped
	noPeer  atomic.Uint64  // relay datagrams with nowhere to go yet
	once    sync.Once
}

// udpRelayConn is the relay as liveTunnel.conn: closing it ends the
// relay (cutDisallowed).
type udpRelayConn struct {
	*net.UDPConn
	u *udpRelay
}

func (c udpRelayConn) Close() error {
	c.u.close()
	return nil
}

func (u *udpRelay) ports() (uint16, uint16) {
	return uint16(u.rtp.LocalAddr().(*net.UDPAddr).Port), uint16(u.rtcp.LocalAddr().(*net.UDPAddr).Port)
}

// run carries datagrams both ways until either side ends. in counts the
// payload bytes camera → relay, out relay → camera.
func (u *udpRelay) run(in, out *atomic.Uint64) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		u.readSocket(u.rtp, mux.UDPChannelRTP, in)
	}()
	go func() {
		defer wg.Done()
		u.readSocket(u.rtcp, mux.UDPChannelRTCP, in)
	}()
	if err := u.readStream(out); err != nil {
		u.log.Debug("UDP relay stream ended", "err", err)
	}
	u.close()
	wg.Wait()
}

func (u *udpRelay) allows(a netip.Addr) bool {
	a = a.Unmap()
	for _, x := range u.allowed {
		if x == a {
			return true
		}
	}
	return false
}

// bufferNote logs once per process that the system capped the receive
// buffers: the fix is a sysctl, which one line says well enough.
var bufferNote sync.Once

// sizeBuffers gives both sockets receive buffers for video
// (udpbuf.Video): with the default (208 KiB, 0.4 s of 4 Mbit/s) a loaded
// host loses a camera's datagrams before the reader runs, and every
// viewer shows the same gaps.
func (u *udpRelay) sizeBuffers() {
	for _, c := range []*net.UDPConn{u.rtp, u.rtcp} {
		got, err := udpbuf.Size(c, udpbuf.Receive, udpbuf.Video)
		if err == nil && got >= udpbuf.Video {
			continue
		}
		bufferNote.Do(func() {
			u.log.Warn("UDP relay: receive buffers smaller than asked; a loaded host may drop camera datagrams (raise net.core.rmem_max)",
				"asked", udpbuf.Video, "got", got, "err", err)
		})
		return
	}
	u.log.Debug("UDP relay receive buffers sized", "bytes", udpbuf.Video)
}

// readSocket sends the camera's datagrams of one socket to the relay.
func (u *udpRelay) readSocket(c *net.UDPConn, ch byte, in *atomic.Uint64) {
	buf := make([]byte, mux.DatagramHeaderLen+mux.MaxDatagram)
	r := udpbuf.NewReader(c)
	var lost uint64
	for {
		n, from, err := r.ReadFrom(buf[mux.DatagramHeaderLen:])
		if err != nil {
			u.close()
			return
		}
		if d := r.Drops(); d > lost {
			if lost == 0 {
				u.log.Warn("UDP relay: the socket's buffer overflowed; camera datagrams lost", "port", c.LocalAddr().(*net.UDPAddr).Port, "lost", d)
			}
			u.lost.Add(d - lost)
			lost = d
		}
		if !u.allows(from.Addr()) {
			if u.dropped.Add(1) == 1 {
				u.log.Warn("UDP relay: dropping datagrams from an address other than the camera's", "from", from.String())
			}
			continue
		}
		if !u.fixed.Load() {
			if cur := u.peer[ch].Load(); cur == nil || *cur != from {
				u.peer[ch].Store(&from)
			}
		}
		mux.PutDatagramHeader(buf, ch, n)
		in.Add(uint64(n)) // before the write: once the relay has it, it counts
		u.wmu.Lock()
		_, err = u.stream.Write(buf[:mux.DatagramHeaderLen+n])
		u.wmu.Unlock()
		if err != nil {
			u.close()
			return
		}
	}
}

// readStream sends the relay's datagrams to the camera.
func (u *udpRelay) readStream(out *atomic.Uint64) error {
	br := bufio.NewReaderSize(u.stream, 16<<10)
	buf := make([]byte, mux.MaxDatagram)
	for {
		ch, n, err := mux.ReadDatagram(br, buf)
		if err != nil {
			return err
		}
		switch ch {
		case mux.UDPChannelRTP, mux.UDPChannelRTCP:
			to := u.peer[ch].Load()
			if to == nil {
				u.noPeer.Add(1)
				continue
			}
			c := u.rtp
			if ch == mux.UDPChannelRTCP {
				c = u.rtcp
			}
			// Errors (an ICMP unreachable from the camera) are dropped, as
			// UDP does.
			out.Add(uint64(n))
			c.WriteToUDPAddrPort(buf[:n], *to)
		case mux.UDPChannelPeer:
			rtp, rtcp, err := mux.ParseUDPPeer(buf[:n])
			if err != nil {
				return err
			}
			ip := u.allowed[0]
			if cur := u.peer[0].Load(); cur != nil {
				ip = cur.Addr() // the address the camera actually sends from
			}
			a, b := netip.AddrPortFrom(ip, rtp), netip.AddrPortFrom(ip, rtcp)
			u.fixed.Store(true)
			u.peer[0].Store(&a)
			u.peer[1].Store(&b)
		}
	}
}

// close ends the relay: the stream, then both sockets, which ends the
// readers.
func (u *udpRelay) close() {
	u.once.Do(func() {
		u.stream.Close()
		u.rtp.Close()
		u.rtcp.Close()
	})
}
