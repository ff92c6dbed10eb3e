package main

import (
	"encoding/binary"

	"net"
	"strings"
	"sync"
	"time"

	"github.com/nanodems/connector/rtsp"
)

// fastCamera is the cheapest RTSP camera that still looks like one to the
// gateway: it answers OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER and
// TEARDOWN, and once playing writes one H.264 frame every 40 ms as a
// single Write of ready-made interleaved RTP packets (FU-A, a keyframe
// with SPS and PPS every 25 frames). The bytes are made once and shared
// by every session: the camera costs one syscall per frame per session,
// so on a 2-core machine the gateway, not the camera, is what saturates.
type fastCamera struct {
	ln     net.Listener
	frames [][]byte // 25 frames, interleaved on channel 0
	mu     sync.Mutex
	conns  map[net.Conn]bool
}

const sdpBody = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=bench\r\nt=0 0\r\na=control:*\r\na=range:npt=0-\r\n" +
	"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n" +
	"a=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z0LACtoR7ARAAAADAEAAAAyjxImo,aM4PyA==\r\na=control:trackID=0\r\n"

func startFastCamera(addr string, bitrate int) (*fastCamera, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &fastCamera{ln: ln, conns: map[net.Conn]bool{}}
	c.frames = makeFrames(bitrate / 8 / 25)
	go c.accept()
	return c, nil
}

// makeFrames builds 25 frames of size bytes each as interleaved RTP.
func makeFrames(size int) [][]byte {
	const mtu = 1400
	var frames [][]byte
	seq := uint16(0)
	for f := 0; f < 25; f++ {
		var b []byte
		pkt := func(payload []byte, marker bool) {
			hdr := make([]byte, 12)
			hdr[0], hdr[1] = 0x80, 96
			if marker {
				hdr[1] |= 0x80
			}
			binary.BigEndian.PutUint16(hdr[2:], seq)
			binary.BigEndian.PutUint32(hdr[4:], uint32(f*3600))
			binary.BigEndian.PutUint32(hdr[8:], 0x1234)
			seq++
			b = rtsp.AppendFrameHeader(b, 0, len(hdr)+len(payload))
			b = append(append(b, hdr...), payload...)
		}
		nalType := byte(1)
		if f == 0 {
			nalType = 5
			sps := []byte{0x67, 0x42, 0xc0, 0x0a, 0xda, 0x11}
			pps := []byte{0x68, 0xce, 0x0f, 0xc8}
			stap := []byte{0x18}
			stap = binary.BigEndian.AppendUint16(stap, uint16(len(sps)))
			stap = append(stap, sps...)
			stap = binary.BigEndian.AppendUint16(stap, uint16(len(pps)))
			stap = append(stap, pps...)
			pkt(stap, false)
		}
		for off := 0; off < size; off += mtu {
			n := min(mtu, size-off)
			fu := []byte{0x60 | 28, nalType}
			if off == 0 {
				fu[1] |= 0x80
			}
			if off+n >= size {
				fu[1] |= 0x40
			}
			pkt(append(fu, make([]byte, n)...), off+n >= size)
		}
		frames = append(frames, b)
	}
	return frames
}

func (c *fastCamera) close() {
	c.ln.Close()
	c.mu.Lock()
	for nc := range c.conns {
		nc.Close()
	}
	c.mu.Unlock()
}

func (c *fastCamera) accept() {
	for {
		nc, err := c.ln.Accept()
		if err != nil {
			return
		}
		c.mu.Lock()
		c.conns[nc] = true
		c.mu.Unlock()
		go c.serve(nc)
	}
}

func (c *fastCamera) serve(nc net.Conn) {
	defer func() {
		nc.Close()
		c.mu.Lock()
		delete(c.conns, nc)
		c.mu.Unlock()
	}()
	rd := rtsp.NewReader(nc, 4096, rtsp.Limits{})
	var wmu sync.Mutex
	stop := make(chan struct{})
	defer close(stop)
	playing := false
	for {
		it, err := rd.Next()
		if err != nil {
			return
		}
		if it.Kind != rtsp.KindRequest {
			continue
		}
		req := it.Req
		resp := &rtsp.Response{StatusCode: 200, Header: rtsp.Header{{Name: "CSeq", Value: req.CSeq()}}}
		switch req.Method {
		case "OPTIONS":
			resp.Header.Add("Public", "OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN")
		case "DESCRIBE":
			resp.Header.Add("Content-Base", strings.TrimSuffix(req.URL, "/")+"/")
			resp.Header.Add("Content-Type", "application/sdp")
			resp.Body = []byte(sdpBody)
		case "SETUP":
			resp.Header.Add("Transport", req.Header.Get("Transport")+";ssrc=00001234")
			resp.Header.Add("Session", "BENCH;timeout=60")
		case "PLAY":
			resp.Header.Add("Session", "BENCH;timeout=60")
			resp.Header.Add("Range", "npt=0.000-")
			playing = true
		case "GET_PARAMETER":
			resp.Header.Add("Session", "BENCH;timeout=60")
		case "TEARDOWN":
			playing = false
		default:
			resp.StatusCode = 501
		}
		wmu.Lock()
		_, err = nc.Write(resp.AppendTo(nil))
		wmu.Unlock()
		if err != nil {
			return
		}
		if playing && req.Method == "PLAY" {
			go c.stream(nc, &wmu, stop)
		}
	}
}

// stream writes a frame every 40 ms until the connection ends.
func (c *fastCamera) stream(nc net.Conn, wmu *sync.Mutex, stop chan struct{}) {
	t := time.NewTicker(40 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		wmu.Lock()
		_, err := nc.Write(c.frames[i%len(c.frames)])
		wmu.Unlock()
		if err != nil {
			return
		}
	}
}
