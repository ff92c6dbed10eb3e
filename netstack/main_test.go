//go:build linux

package netstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nanodems/connector/internal/testnet"
)

// envTestTool selects what the test binary does when it is re-run as the
// tool inside the namespace (or as another helper of these tests).
const envTestTool = "NETSTACK_TEST_TOOL"

// TestMain first gives the test binary the helper modes a real
// nanodems-tunnel has (Child) and the tool modes the tests run in the
// namespace; then it runs the tests and fails the package if a goroutine
// outlives them: every Stack, pipe and dial must be gone.
func TestMain(m *testing.M) {
	if code, ok := Child(); ok {
		os.Exit(code)
	}
	if tool := os.Getenv(envTestTool); tool != "" {
		os.Exit(runTestTool(tool, os.Args[1:]))
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func runTestTool(tool string, args []string) int {
	switch tool {
	case "echo":
		return toolEcho(args)
	case "refused":
		return toolRefused(args)
	case "exit":
		n, _ := strconv.Atoi(args[0])
		return n
	case "sleep":
		io.Copy(io.Discard, os.Stdin)
		return 0
	case "nouserns":
		return toolNoUserNS()
	case "hosttun":
		return toolHostTUN()
	}
	fmt.Fprintln(os.Stderr, "unknown test tool", tool)
	return 99
}

// toolEcho runs in the namespace: for each address it sends 4 MiB of
// random bytes, half-closes, reads the echo to EOF and compares digests.
// It also checks that it runs as the uid the test expects (nobody when
// the tests run as root) and that its connection is an ordinary loopback
// one (source 127.0.0.1).
func toolEcho(addrs []string) int {
	if want := os.Getenv("NETSTACK_TEST_UID"); want != "" && want != strconv.Itoa(os.Getuid()) {
		fmt.Printf("uid %d, want %s\n", os.Getuid(), want)
		return 4
	}
	for _, a := range addrs {
		if err := echoOnce(a, 4<<20); err != nil {
			fmt.Println(err)
			return 3
		}
	}
	fmt.Println("ok")
	return 0
}

func echoOnce(addr string, size int) error {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if la := c.LocalAddr().(*net.TCPAddr); !la.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		return fmt.Errorf("%s: local address %s, want 127.0.0.1", addr, la)
	}
	if err := testnet.RoundTrip(c, int64(size)); err != nil {
		return fmt.Errorf("%s: %w", addr, err)
	}
	return nil
}

// toolRefused connects twice to each address and wants a refusal (RST)
// each time.
func toolRefused(addrs []string) int {
	for _, a := range addrs {
		for range 2 {
			c, err := net.DialTimeout("tcp", a, 5*time.Second)
			if err == nil {
				c.Close()
				fmt.Printf("%s: connected, want refused\n", a)
				return 5
			}
			if !errors.Is(err, syscall.ECONNREFUSED) {
				fmt.Printf("%s: %v, want connection refused\n", a, err)
				return 5
			}
		}
	}
	fmt.Println("refused")
	return 0
}

// binDir holds a copy of the test binary that nobody may execute: the
// go build cache is private to root, and the namespace helper of the
// rootless test runs as nobody.
var (
	binDir  string
	binPath string
	binOnce sync.Once
	binErr  error
)

func testBinary(t testing.TB) string {
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "netstack-test-bin")
		if binErr != nil {
			return
		}
		if binErr = os.Chmod(binDir, 0o755); binErr != nil {
			return
		}
		var src *os.File
		if src, binErr = os.Open("/proc/self/exe"); binErr != nil {
			return
		}
		defer src.Close()
		binPath = filepath.Join(binDir, "netstack.test")
		var dst *os.File
		if dst, binErr = os.OpenFile(binPath, os.O_CREATE|os.O_WRONLY, 0o755); binErr != nil {
			return
		}
		_, binErr = io.Copy(dst, src)
		if cerr := dst.Close(); binErr == nil {
			binErr = cerr
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// echoServer is the stand-in for a camera: a loopback TCP server that
// echoes each connection and half-closes after the client's EOF.
func echoServer(t testing.TB) string {
	return testnet.Serve(t, testnet.Echo).String()
}

// dialTo is a Dialer that reaches target whatever plan address is asked,
// and counts the calls.
func dialTo(target string, calls *int64, mu *sync.Mutex) Dialer {
	return func(ctx context.Context, ip string, port uint16) (net.Conn, error) {
		if mu != nil {
			mu.Lock()
			*calls++
			mu.Unlock()
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", target)
	}
}
