package rtsp

import (
	"bufio"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nanodems/connector/internal/testnet"
	"github.com/nanodems/connector/internal/testwait"
)

// answers reports whether the gateway at addr accepts a connection and
// answers a malformed request (with a 400).
func answers(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("NOT RTSP AT ALL\r\n\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "RTSP/1.0 4") {
		return errors.New("unexpected answer " + line)
	}
	return nil
}

// Out of file descriptors, an accept fails. Both listeners must serve
// again once descriptors are free: the goroutine listener waits the
// failure out; gnet stops its engine on it (closing the connections it
// held), and the gateway starts it again on the same port.
func TestListenerSurvivesEMFILE(t *testing.T) {
	for _, mode := range []ListenerMode{GNet, Goroutines} {
		t.Run(string(mode), func(t *testing.T) {
			g := startGateway(t, &fakeBackend{}, mode)
			addr := g.Addr()
			if err := answers(addr); err != nil {
				t.Fatalf("before: %v", err)
			}
			ap, err := net.ResolveTCPAddr("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			// Client sockets made before the descriptors run out; they
			// connect after, which makes the gateway accept.
			var socks []int
			for range 3 {
				fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
				if err != nil {
					t.Fatal(err)
				}
				socks = append(socks, fd)
			}
			defer func() {
				for _, fd := range socks {
					syscall.Close(fd)
				}
			}()
			sa := &syscall.SockaddrInet4{Port: ap.Port}
			copy(sa.Addr[:], ap.IP.To4())

			restore := testnet.ExhaustFDs(t)
			for _, fd := range socks {
				if err := syscall.Connect(fd, sa); err != nil {
					restore()
					t.Fatalf("connect: %v", err)
				}
			}
			time.Sleep(300 * time.Millisecond) // deliberate: accepts fail meanwhile, several backoff rounds
			restore()

			start := time.Now()
			if err := testwait.Until(10*time.Second, func() error { return answers(addr) }); err != nil {
				t.Fatalf("the %s listener does not serve after descriptors were freed: %v", mode, err)
			}
			t.Logf("%s: serving again %v after descriptors were freed", mode, time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestListenTakenPort: a taken port is refused by both listeners with
// the same error, naming the address and the reason (not gnet's
// "setsockopt: bad file descriptor").
func TestListenTakenPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	for _, mode := range []ListenerMode{GNet, Goroutines} {
		t.Run(string(mode), func(t *testing.T) {
			g, err := New(Config{Addr: addr, Backend: &fakeBackend{}, Mode: mode, Logger: testLogger(), Loops: 1})
			if err != nil {
				t.Fatal(err)
			}
			err = g.Start()
			if err == nil {
				g.Close()
				t.Fatalf("%s listener started on the taken %s", mode, addr)
			}
			want := "listen tcp " + addr + ": bind: address already in use"
			if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), want) {
				t.Fatalf("%s listener: %q, want it to say %q", mode, err, want)
			}
			t.Logf("%s: %v", mode, err)
		})
	}
}
