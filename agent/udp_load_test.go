package agent

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanodems/connector/internal/testwait"
	"github.com/nanodems/connector/internal/udpbuf"
	"github.com/nanodems/connector/mux"
)

// burnCPU runs n busy processes until the test ends: the load under
// which a reader is not scheduled for a while.
func burnCPU(t *testing.T, n int) {
	t.Helper()
	for range n {
		cmd := exec.Command("sh", "-c", "while :; do :; done")
		if err := cmd.Start(); err != nil {
			t.Fatalf("CPU burner: %v", err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
	}
}

// cameraSecond is one second of a 4 Mbit/s camera in datagrams of 1,200
// bytes: a 125 KB keyframe sent at once, then 24 frames of 15.6 KB every
// 40 ms.
func cameraSecond() [][]int {
	const mtu = 1200
	frame := func(bytes int) []int {
		var sizes []int
		for ; bytes > 0; bytes -= mtu {
			sizes = append(sizes, min(bytes, mtu))
		}
		return sizes
	}
	out := [][]int{frame(125_000)}
	for range 24 {
		out = append(out, frame(15_600))
	}
	return out
}

// TestUDPRelayUnderLoad: a UDP-only camera's 4 Mbit/s stream (keyframe
// bursts included) crosses the agent's UDP relay while CPU burners load
// the host: every datagram reaches the relay's end of the tunnel, in
// order and intact (count and SHA-256 of the whole stream), and the
// agent counts no drop. A socket with the system's default buffer,
// sent the same stream under the same load, shows what the sizing saves
// (logged, not asserted: whether it loses depends on the scheduler).
func TestUDPRelayUnderLoad(t *testing.T) {
	h := newUDPHarness(t, mux.Target{Host: "127.0.0.1", Port: 554})
	r, err := h.open(t, "127.0.0.1", 554)
	if err != nil {
		t.Fatal(err)
	}
	cam := listenUDP(t, "127.0.0.1")
	control := listenUDP(t, "127.0.0.1") // default receive buffer
	controlReader := udpbuf.NewReader(control)

	const seconds = 8
	want := sha256.New()
	var datagrams [][]byte
	for range seconds {
		for _, frame := range cameraSecond() {
			for _, size := range frame {
				b := make([]byte, size)
				rand.Read(b)
				binary.BigEndian.PutUint32(b, uint32(len(datagrams)))
				datagrams = append(datagrams, b)
				want.Write(b)
			}
		}
	}
	sent := len(datagrams)

	// The relay's end: count and hash what arrives, in order.
	got := sha256.New()
	var received atomic.Int64
	var outOfOrder atomic.Int64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		buf := make([]byte, mux.MaxDatagram)
		for received.Load() < int64(sent) {
			ch, n, err := mux.ReadDatagram(r.br, buf)
			if err != nil {
				return
			}
			if ch != mux.UDPChannelRTP {
				continue
			}
			if binary.BigEndian.Uint32(buf) != uint32(received.Load()) {
				outOfOrder.Add(1)
			}
			got.Write(buf[:n])
			received.Add(1)
		}
	}()
	var controlGot atomic.Int64
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			if _, _, err := controlReader.ReadFrom(buf); err != nil {
				return
			}
			controlGot.Add(1)
		}
	}()

	burnCPU(t, 2*runtime.NumCPU())
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(r.rtp)}
	ctl := control.LocalAddr().(*net.UDPAddr)
	// Paced like a camera: a frame every 40 ms, each sent at once.
	tick := time.NewTicker(40 * time.Millisecond)
	i := 0
	for range seconds {
		for _, frame := range cameraSecond() {
			<-tick.C
			for range frame {
				if _, err := cam.WriteToUDP(datagrams[i], to); err != nil {
					t.Fatal(err)
				}
				cam.WriteToUDP(datagrams[i], ctl)
				i++
			}
		}
	}
	tick.Stop()

	err = testwait.Until(60*time.Second, func() error {
		if n := received.Load(); n < int64(sent) {
			return fmt.Errorf("the relay received %d of %d datagrams (agent counted %d drops)", n, sent, h.a.Counters().UDPDrops)
		}
		return nil
	})
	r.s.Close()
	control.Close()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if n := outOfOrder.Load(); n != 0 {
		t.Fatalf("%d datagrams out of order", n)
	}
	if string(got.Sum(nil)) != string(want.Sum(nil)) {
		t.Fatal("the stream's checksum differs at the relay's end")
	}
	if d := h.a.Counters().UDPDrops; d != 0 {
		t.Fatalf("agent counted %d dropped datagrams", d)
	}
	t.Logf("%d datagrams (%d s of 4 Mbit/s) under %d CPU burners: all through the agent's relay; a default-buffer socket got %d and dropped %d",
		sent, seconds, 2*runtime.NumCPU(), controlGot.Load(), controlReader.Drops())
}

// TestUDPRelayCountsDrops: datagrams a relay's socket drops (its buffer
// made small here, a burst sent faster than any reader) are counted in
// the agent's heartbeat: what reached the relay plus what the agent
// counted as dropped is what the camera sent.
func TestUDPRelayCountsDrops(t *testing.T) {
	h := newUDPHarness(t, mux.Target{Host: "127.0.0.1", Port: 554})
	r, err := h.open(t, "127.0.0.1", 554)
	if err != nil {
		t.Fatal(err)
	}
	u := liveRelay(t, h.a)
	if err := u.rtp.SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	cam := listenUDP(t, "127.0.0.1")
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(r.rtp)}
	const burst = 2000
	payload := make([]byte, 1200)
	for range burst {
		if _, err := cam.WriteToUDP(payload, to); err != nil {
			t.Fatal(err)
		}
	}
	// The kernel reports the count with the datagrams after a drop:
	// small "tail" datagrams follow until the relay has read all that
	// was queued and the count covers the rest (a tail that meets a full
	// buffer is dropped and counted too).
	received, tailsSent, tailsGot := 0, 0, 0
	buf := make([]byte, mux.MaxDatagram)
	settled := func() bool {
		return uint64(received)+h.a.Counters().UDPDrops == burst+uint64(tailsSent-tailsGot)
	}
	for tries := 0; !settled() || tailsGot == 0; tries++ {
		if tries == 100 {
			t.Fatalf("received %d + dropped %d != sent %d + tails lost %d", received, h.a.Counters().UDPDrops, burst, tailsSent-tailsGot)
		}
		if _, err := cam.WriteToUDP([]byte("tail"), to); err != nil {
			t.Fatal(err)
		}
		tailsSent++
		for {
			r.s.SetReadDeadline(time.Now().Add(500 * time.Millisecond)) // paces the loop; no assertion on time
			_, n, err := mux.ReadDatagram(r.br, buf)
			if err != nil {
				break // nothing more queued now
			}
			if n == 4 {
				tailsGot++
				break
			}
			received++
		}
	}
	drops := h.a.Counters().UDPDrops
	if drops == 0 {
		t.Fatalf("a %d-datagram burst into a 4 KiB buffer: no drop counted", burst)
	}
	t.Logf("burst of %d into a 4 KiB buffer: %d relayed, %d counted as dropped", burst, received, drops)
}
