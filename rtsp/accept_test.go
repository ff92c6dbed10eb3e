package rtsp

import (
	"bufio"
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// exhaustFDs lowers the soft open-file limit to the descriptors in use
// and fills every free number below it, so that the next accept or
// socket fails with EMFILE. The returned function gives everything back.
// The test calling it must not run in parallel with others.
func exhaustFDs(t *testing.T) (restore func()) {
	t.Helper()
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	lim := syscall.Rlimit{Cur: uint64(len(ents)) + 8, Max: orig.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	var fill []int
	for {
		fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) {
				t.Fatalf("filling descriptors: %v", err)
			}
			break
		}
		fill = append(fill, fd)
	}
	return func() {
		for _, fd := range fill {
			syscall.Close(fd)
		}
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig)
	}
}

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

			restore := exhaustFDs(t)
			for _, fd := range socks {
				if err := syscall.Connect(fd, sa); err != nil {
					restore()
					t.Fatalf("connect: %v", err)
				}
			}
			time.Sleep(300 * time.Millisecond) // accepts fail meanwhile
			restore()

			deadline := time.Now().Add(10 * time.Second)
			start := time.Now()
			for {
				err := answers(addr)
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the %s listener does not serve %v after descriptors were freed: %v", mode, time.Since(start).Round(time.Millisecond), err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Logf("%s: serving again %v after descriptors were freed", mode, time.Since(start).Round(time.Millisecond))
		})
	}
}
