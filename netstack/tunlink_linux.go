package netstack

import (
	"sync"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/rawfile"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/fdbased"
	"gvisor.dev/gvisor/pkg/tcpip/link/stopfd"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// virtio_net_hdr (linux/virtio_net.h), which an IFF_VNET_HDR TUN device
// puts before every packet both ways.
const (
	vnetHdrSize       = 10
	vnetFlagNeedsCsum = 1 // the packet's L4 checksum is partial (kernel → us)
)

// vnetPartialTCP4 is the header of a TCP/IPv4 packet the stack sends
// with a partial checksum (the pseudo-header sum only), at csum_start 20
// (the IPv4 header without options, which the stack never sends) and
// csum_offset 16: the kernel takes it as CHECKSUM_PARTIAL, which local
// delivery accepts as verified, exactly as for a packet sent on lo. (The
// header's DATA_VALID flag would say the same, but tun ignores it.)
var vnetPartialTCP4 = [vnetHdrSize]byte{vnetFlagNeedsCsum, 0, 0, 0, 0, 0, header.IPv4MinimumSize, 0, header.TCPChecksumOffset, 0}

// vnetPlain is the header of any other packet: its checksums are complete
// (ICMP is always summed by the stack; UDP's zero checksum means none).
var vnetPlain [vnetHdrSize]byte

// tunLink is the stack's link endpoint on a TUN descriptor opened with
// IFF_VNET_HDR and TUN_F_CSUM offload. It exists instead of fdbased for
// two measured reasons (docs/perf-netstack.md):
//
//   - Checksums. The path never leaves the machine, so, as on lo, nobody
//     needs TCP checksums: with the virtio header the kernel hands us
//     packets with partial checksums and takes ours as valid. fdbased
//     speaks that header only on sockets, so on a TUN both the stack
//     (computing, 4.5 % of all CPU in a perf profile of a download) and
//     the kernel (csum_partial, 2 %) did the work.
//   - Handoffs. fdbased reads on one goroutine and delivers on another
//     ("processors", one wake-up per packet). The path is latency-bound
//     (half the CPU idle in that profile), so tunLink delivers on the
//     reading goroutine.
type tunLink struct {
	fd   int
	mtu  uint32
	stop stopfd.StopFD

	mu         sync.Mutex
	dispatcher stack.NetworkDispatcher
	running    sync.WaitGroup
	onClose    func()
}

func newTunLink(fd int, mtu uint32) (*tunLink, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, err
	}
	sfd, err := stopfd.New()
	if err != nil {
		return nil, err
	}
	return &tunLink{fd: fd, mtu: mtu, stop: sfd}, nil
}

func (l *tunLink) MTU() uint32                             { return l.mtu }
func (l *tunLink) SetMTU(mtu uint32)                       { l.mtu = mtu }
func (l *tunLink) MaxHeaderLength() uint16                 { return 0 }
func (l *tunLink) LinkAddress() tcpip.LinkAddress          { return "" }
func (l *tunLink) SetLinkAddress(tcpip.LinkAddress)        {}
func (l *tunLink) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareNone }
func (l *tunLink) AddHeader(*stack.PacketBuffer)           {}
func (l *tunLink) ParseHeader(*stack.PacketBuffer) bool    { return true }
func (l *tunLink) Wait()                                   { l.running.Wait() }
func (l *tunLink) SetOnCloseAction(f func())               { l.onClose = f }

func (l *tunLink) Capabilities() stack.LinkEndpointCapabilities {
	return stack.CapabilityRXChecksumOffload | stack.CapabilityTXChecksumOffload
}

func (l *tunLink) IsAttached() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dispatcher != nil
}

// Attach starts the read loop; Attach(nil), which the stack calls when it
// removes the NIC, stops it and waits for it.
func (l *tunLink) Attach(d stack.NetworkDispatcher) {
	l.mu.Lock()
	if d == nil {
		attached := l.dispatcher != nil
		l.dispatcher = nil
		l.mu.Unlock()
		if attached {
			l.stop.Stop()
			l.running.Wait()
		}
		return
	}
	if l.dispatcher != nil {
		l.mu.Unlock()
		return
	}
	l.dispatcher = d
	l.running.Add(1)
	l.mu.Unlock()
	go l.readLoop(d)
}

// stopReading stops the inbound loop and waits for it; Stack.Close calls
// it before it destroys the stack (see there why). The later Attach(nil)
// then finds the loop gone.
func (l *tunLink) stopReading() {
	l.mu.Lock()
	attached := l.dispatcher != nil
	l.mu.Unlock()
	if attached {
		l.stop.Stop() // an eventfd increment: safe to repeat in Attach(nil)
		l.running.Wait()
	}
}

func (l *tunLink) Close() {
	if l.onClose != nil {
		l.onClose()
	}
}

// readLoop reads one packet per readv into fdbased's ladder of buffer
// sizes (128 B … 32 KiB, 64 KiB in all), so an ACK takes one small view
// and a 64 KiB segment the whole ladder, and delivers it at once.
func (l *tunLink) readLoop(d stack.NetworkDispatcher) {
	defer l.running.Done()
	var hdr [vnetHdrSize]byte
	sizes := fdbased.BufConfig
	views := make([]*buffer.View, len(sizes))
	iov := make([]unix.Iovec, len(sizes)+1)
	iov[0] = rawfile.IovecFromBytes(hdr[:])
	defer func() {
		for _, v := range views {
			if v != nil {
				v.Release()
			}
		}
	}()
	for {
		for i, v := range views {
			if v == nil {
				v = buffer.NewViewSize(sizes[i])
				views[i] = v
			}
			iov[i+1] = unix.Iovec{Base: v.BasePtr()}
			iov[i+1].SetLen(v.Size())
		}
		n, errno := rawfile.BlockingReadvUntilStopped(l.stop.EFD, l.fd, iov)
		if n < 0 || (errno != 0 && errno != unix.EAGAIN) {
			return // stopped, or the device is gone
		}
		n -= vnetHdrSize
		if n <= 0 {
			continue
		}
		var payload buffer.Buffer
		for i, v := range views {
			if n == 0 {
				break
			}
			take := min(v.Size(), n)
			v.CapLength(take)
			payload.Append(v)
			views[i] = nil
			n -= take
		}
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: payload})
		pkt.NetworkProtocolNumber = header.IPv4ProtocolNumber
		// A TUN carries bare IP; only IPv4 is served.
		if h, ok := pkt.Data().PullUp(1); ok && h[0]>>4 == 4 {
			d.DeliverNetworkPacket(header.IPv4ProtocolNumber, pkt)
		}
		pkt.DecRef()
	}
}

// WritePackets writes each packet with one writev, the virtio header in
// front. A TUN write never blocks for long: the kernel takes the packet
// into its stack at once.
func (l *tunLink) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	var iovArr [8]unix.Iovec
	sent := 0
	for _, pkt := range pkts.AsSlice() {
		views := pkt.AsSlices()
		iov := iovArr[:0]
		if len(views)+1 > len(iovArr) {
			iov = make([]unix.Iovec, 0, len(views)+1)
		}
		iov = append(iov, rawfile.IovecFromBytes(vnetHeaderFor(pkt)))
		for _, v := range views {
			if len(v) > 0 {
				iov = append(iov, rawfile.IovecFromBytes(v))
			}
		}
		if errno := rawfile.NonBlockingWriteIovec(l.fd, iov); errno != 0 {
			if sent == 0 {
				return 0, tcpip.TranslateErrno(errno)
			}
			return sent, nil
		}
		sent++
	}
	return sent, nil
}

// vnetHeaderFor picks pkt's virtio header and, for TCP, writes the partial
// checksum the kernel expects with it (the stack, told it has checksum
// offload, left the field for us).
func vnetHeaderFor(pkt *stack.PacketBuffer) []byte {
	if pkt.NetworkProtocolNumber != header.IPv4ProtocolNumber || pkt.TransportProtocolNumber != header.TCPProtocolNumber {
		return vnetPlain[:]
	}
	ip := header.IPv4(pkt.NetworkHeader().Slice())
	tcp := header.TCP(pkt.TransportHeader().Slice())
	if len(tcp) < header.TCPMinimumSize {
		return vnetPlain[:]
	}
	if len(ip) != header.IPv4MinimumSize {
		// Not a shape the stack makes; sum it in full rather than guess.
		tcp.SetChecksum(0)
		xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), uint16(len(tcp)+pkt.Data().Size()))
		xsum = checksum.Combine(xsum, pkt.Data().Checksum())
		tcp.SetChecksum(^tcp.CalculateChecksum(xsum))
		return vnetPlain[:]
	}
	tcp.SetChecksum(header.PseudoHeaderChecksum(header.TCPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), uint16(len(tcp)+pkt.Data().Size())))
	return vnetPartialTCP4[:]
}
