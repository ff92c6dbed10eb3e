//go:build linux

package netstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nanodems/connector/internal/testwait"
)

// nobody is who creates the namespace when the tests run as root (CI), so
// that the rootless path is really taken: the user namespace then belongs
// to an unprivileged user, exactly as for an operator without admin rights.
var nobody = &syscall.Credential{Uid: 65534, Gid: 65534}

// rootless returns the ExecOptions and the uid the tool should run as: as
// root, the namespace is made by nobody; otherwise by the caller itself.
func rootless(t *testing.T) (ExecOptions, int) {
	t.Helper()
	requireNamespaces(t)
	opt := ExecOptions{Self: testBinary(t)}
	if os.Getuid() == 0 {
		opt.Credential = nobody
		return opt, int(nobody.Uid)
	}
	return opt, os.Getuid()
}

// requireNamespaces skips where this machine cannot make an unprivileged
// user namespace or has no TUN device at all: the error path for those is
// tested on its own (TestExecNoUserNamespaces, TestExecTunPermission).
func requireNamespaces(t *testing.T) {
	t.Helper()
	if b, err := os.ReadFile("/proc/sys/user/max_user_namespaces"); err != nil || strings.TrimSpace(string(b)) == "0" {
		t.Skip("no user namespaces on this machine")
	}
	if _, err := os.Stat(DefaultTunDevice); err != nil {
		t.Skip("no TUN device on this machine")
	}
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func planOf(addrs ...string) Planner {
	m := make(map[netip.AddrPort]bool)
	for _, a := range addrs {
		m[netip.MustParseAddrPort(a)] = true
	}
	return func() map[netip.AddrPort]bool { return m }
}

func withTool(env []string, tool string, extra ...string) []string {
	return append(append(append([]string(nil), env...), envTestTool+"="+tool), extra...)
}

// TestExecEcho is the end-to-end check of the rootless way: the tool (this
// test binary) runs as nobody in its own namespace, connects to the plan
// addresses 127.0.0.2:80 and :554, pushes 4 MiB through each with a
// half-close, and the echo comes back intact through TUN → gVisor →
// Dialer → loopback server and back.
func TestExecEcho(t *testing.T) {
	opt, uid := rootless(t)
	target := echoServer(t)
	var calls int64
	var mu sync.Mutex
	var out, errOut bytes.Buffer
	opt.Stdout, opt.Stderr = &out, &errOut
	opt.Stdin = strings.NewReader("")
	opt.Env = withTool(os.Environ(), "echo", fmt.Sprintf("NETSTACK_TEST_UID=%d", uid))
	opt.Logger = slog.New(slog.NewTextHandler(&logBuf{}, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	start := time.Now()
	code, err := Exec(ctx, dialTo(target, &calls, &mu), planOf("127.0.0.2:80", "127.0.0.2:554"),
		[]string{opt.Self, "127.0.0.2:80", "127.0.0.2:554"}, opt)
	if err != nil || code != 0 {
		t.Fatalf("Exec = %d, %v; tool said %q %q", code, err, out.String(), errOut.String())
	}
	if got := strings.TrimSpace(out.String()); got != "ok" {
		t.Fatalf("tool said %q", got)
	}
	if calls != 2 {
		t.Fatalf("Dialer called %d times, want 2", calls)
	}
	t.Logf("2 × 4 MiB echoed through the namespace as uid %d in %v", uid, time.Since(start).Round(time.Millisecond))
}

// TestExecRejectsUnknown: a port or an address outside the plan is refused
// inside the namespace (the tool sees ECONNREFUSED at once, not a
// timeout), the Dialer is never called for it, and each is logged once.
func TestExecRejectsUnknown(t *testing.T) {
	opt, _ := rootless(t)
	var calls int64
	var mu sync.Mutex
	var out bytes.Buffer
	var logs logBuf
	opt.Stdout, opt.Stderr = &out, &out
	opt.Stdin = strings.NewReader("")
	opt.Env = withTool(os.Environ(), "refused")
	opt.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, err := Exec(ctx, dialTo("127.0.0.1:1", &calls, &mu), planOf("127.0.0.2:80"),
		[]string{opt.Self, "127.0.0.3:80", "127.0.0.2:81"}, opt)
	if err != nil || code != 0 {
		t.Fatalf("Exec = %d, %v; tool said %q", code, err, out.String())
	}
	if calls != 0 {
		t.Fatalf("Dialer called %d times for addresses outside the plan", calls)
	}
	for _, a := range []string{"127.0.0.3:80", "127.0.0.2:81"} {
		if n := strings.Count(logs.String(), "rejecting unknown loopback "+a); n != 1 {
			t.Errorf("%q logged %d times, want once; log:\n%s", a, n, logs.String())
		}
	}
}

// TestExecDialFailure: a plan address whose Dialer fails is refused too
// (a camera port that is down looks closed, not hung).
func TestExecDialFailure(t *testing.T) {
	opt, _ := rootless(t)
	var out bytes.Buffer
	opt.Stdout, opt.Stderr = &out, &out
	opt.Stdin = strings.NewReader("")
	opt.Env = withTool(os.Environ(), "refused")
	opt.Logger = slog.New(slog.NewTextHandler(&logBuf{}, nil))
	fail := func(ctx context.Context, ip string, port uint16) (net.Conn, error) {
		return nil, errors.New("agent offline")
	}
	code, err := Exec(context.Background(), fail, planOf("127.0.0.2:80"), []string{opt.Self, "127.0.0.2:80"}, opt)
	if err != nil || code != 0 {
		t.Fatalf("Exec = %d, %v; tool said %q", code, err, out.String())
	}
}

// TestExecExitStatus: the tool's exit status comes back as is; a missing
// tool is 127 with a sentence, as in a shell.
func TestExecExitStatus(t *testing.T) {
	opt, _ := rootless(t)
	opt.Stdin = strings.NewReader("")
	opt.Env = withTool(os.Environ(), "exit")
	dial := dialTo("127.0.0.1:1", nil, nil)
	code, err := Exec(context.Background(), dial, nil, []string{opt.Self, "7"}, opt)
	if err != nil || code != 7 {
		t.Fatalf("Exec = %d, %v; want 7, nil", code, err)
	}
	code, err = Exec(context.Background(), dial, nil, []string{"/nonexistent/tool"}, opt)
	if code != ExitNotFound || err == nil || !strings.Contains(err.Error(), "/nonexistent/tool") {
		t.Fatalf("Exec(missing tool) = %d, %v; want 127 and a sentence naming it", code, err)
	}
}

// TestExecCancel: canceling the context ends a tool that would run forever
// (SIGTERM), and Exec returns promptly with the stack torn down.
func TestExecCancel(t *testing.T) {
	opt, _ := rootless(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	opt.Stdin = r // never closed before the cancel: "sleep" blocks on it
	opt.Env = withTool(os.Environ(), "sleep")
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	opt.started = func(int) { close(started) }
	done := make(chan struct{})
	var code int
	go func() {
		defer close(done)
		code, err = Exec(ctx, dialTo("127.0.0.1:1", nil, nil), nil, []string{opt.Self}, opt)
	}()
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("the namespace never came up")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Exec did not return after cancel")
	}
	if code != 128+int(syscall.SIGTERM) {
		t.Fatalf("Exec = %d, %v; want %d (SIGTERM)", code, err, 128+int(syscall.SIGTERM))
	}
}

// TestExecTunPermission: a TUN device the user may not open gives the
// sentence that says so and how to fix it. The device is injected
// (ExecOptions.TunDevice): a root-owned 0600 node, which nobody (or the
// non-root test user, whose namespace holds CAP_NET_ADMIN only) cannot open.
func TestExecTunPermission(t *testing.T) {
	opt, _ := rootless(t)
	dir, err := os.MkdirTemp("", "netstack-tun")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	dev := filepath.Join(dir, "tun")
	if err := os.WriteFile(dev, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if os.Getuid() != 0 {
		os.Chmod(dev, 0)
	}
	opt.TunDevice = dev
	opt.Stdin = strings.NewReader("")
	opt.Env = withTool(os.Environ(), "exit")
	code, err := Exec(context.Background(), dialTo("127.0.0.1:1", nil, nil), nil, []string{opt.Self, "0"}, opt)
	want := tunOpenError(dev, unix.EACCES).Error()
	if code != ExitSetup || err == nil || err.Error() != want {
		t.Fatalf("Exec = %d, %v\nwant %d, %s", code, err, ExitSetup, want)
	}
	if !strings.Contains(want, "cannot open "+dev+": permission denied") {
		t.Fatalf("sentence %q does not name the device and the permission", want)
	}
}

// TestExecNoUserNamespaces: where unprivileged user namespaces are off,
// Exec says so and names the sysctl. The test makes such a system for
// real without touching the machine: a helper runs in its own user
// namespace (where it may set the per-namespace limit) with
// user.max_user_namespaces=0, and calls Exec from there.
func TestExecNoUserNamespaces(t *testing.T) {
	requireNamespaces(t)
	var out bytes.Buffer
	cmd := exec.Command(testBinary(t))
	cmd.Env = withTool(os.Environ(), "nouserns")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	if err := cmd.Run(); err != nil {
		t.Fatalf("helper: %v: %s", err, out.String())
	}
	got := strings.TrimSpace(out.String())
	want := "exit 125: exec: unprivileged user namespaces are disabled: /proc/sys/user/max_user_namespaces is 0; an admin can run `sysctl -w user.max_user_namespaces=15000`, or use `nanodems-tunnel run --tun` as admin (fork/exec " + testBinary(t) + ": no space left on device)"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func toolNoUserNS() int {
	if err := os.WriteFile("/proc/sys/user/max_user_namespaces", []byte("0\n"), 0o644); err != nil {
		fmt.Println("setting the limit:", err)
		return 1
	}
	code, err := Exec(context.Background(), dialTo("127.0.0.1:1", nil, nil), nil, []string{"true"},
		ExecOptions{Self: os.Args[0], Stdin: strings.NewReader("")})
	fmt.Printf("exit %d: %v\n", code, err)
	return 0
}

// TestServeTUN is the --tun (admin) way. It needs root; to leave the
// machine's routes alone while other tests run, the helper serves a fresh
// network namespace, which ServeTUN cannot tell from the host's: the
// interface, the /32 routes in the local table, a plan change picked up
// by the poll, refusal of other plan ports, and removal on return.
func TestServeTUN(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("--tun needs root")
	}
	if _, err := os.Stat(DefaultTunDevice); err != nil {
		t.Skip("no TUN device on this machine")
	}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testBinary(t))
	cmd.WaitDelay = 5 * time.Second
	// On timeout, SIGQUIT: the helper's Go runtime prints every goroutine
	// before it dies, so a hang says where it hung.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) }
	cmd.Env = withTool(os.Environ(), "hosttun")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	err := cmd.Run()
	if err != nil || !strings.HasSuffix(strings.TrimSpace(out.String()), "ok") {
		t.Fatalf("helper: %v:\n%s", err, out.String())
	}
	t.Log(strings.TrimSpace(out.String()))
}

func toolHostTUN() int {
	fail := func(format string, a ...any) int {
		fmt.Printf(format+"\n", a...)
		return 1
	}
	if err := linkUp("lo", 0); err != nil {
		return fail("lo: %v", err)
	}
	planPollForTest = 50 * time.Millisecond
	target := echoServerPlain()
	var mu sync.Mutex
	plan := map[netip.AddrPort]bool{netip.MustParseAddrPort("127.0.0.2:80"): true}
	planner := func() map[netip.AddrPort]bool { mu.Lock(); defer mu.Unlock(); return plan }
	var logs logBuf
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan *Stack, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- serveTUN(ctx, "ndtest0", dialTo(target, nil, nil), planner,
			Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, DefaultTunDevice, func(st *Stack) { ready <- st })
	}()
	var st *Stack
	select {
	case st = <-ready:
	case err := <-errc:
		return fail("ServeTUN: %v", err)
	}
	if err := echoOnce("127.0.0.2:80", 1<<20); err != nil {
		out, _ := exec.Command("ip", "-s", "link", "show", "ndtest0").CombinedOutput()
		ni := st.s.NICInfo()[1]
		return fail("plan address: %v\n%s\nrx %d tx %d ipstats rcv %d malformed %d invaliddst %d tcp seg %d csumerr %d", err, out, ni.Stats.Rx.Packets.Value(), ni.Stats.Tx.Packets.Value(), st.s.Stats().IP.PacketsReceived.Value(), st.s.Stats().IP.MalformedPacketsReceived.Value(), st.s.Stats().IP.InvalidDestinationAddressesReceived.Value(), st.s.Stats().TCP.ValidSegmentsReceived.Value(), st.s.Stats().TCP.ChecksumErrors.Value())
	}
	// 127.0.0.3 is not routed into the TUN in host mode: the machine's lo
	// answers, and nothing listens there.
	if c, err := net.Dial("tcp", "127.0.0.3:80"); err == nil {
		c.Close()
		return fail("127.0.0.3:80 connected")
	}
	// A port of a plan address that is not in the plan: the stack refuses.
	if c, err := net.Dial("tcp", "127.0.0.2:81"); err == nil || !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		return fail("127.0.0.2:81: %v, want refused", err)
	}
	if !strings.Contains(logs.String(), "rejecting unknown loopback 127.0.0.2:81") {
		return fail("no rejection logged: %s", logs.String())
	}
	// A plan refresh adds 127.0.0.4:554: reachable after the next poll.
	mu.Lock()
	plan = map[netip.AddrPort]bool{netip.MustParseAddrPort("127.0.0.2:80"): true, netip.MustParseAddrPort("127.0.0.4:554"): true}
	mu.Unlock()
	if err := testwait.Until(5*time.Second, func() error { return echoOnce("127.0.0.4:554", 64<<10) }); err != nil {
		return fail("127.0.0.4:554 after the plan change: %v", err)
	}
	if s := st.Stats(); s.Accepted != 2 || s.Rejected != 1 {
		return fail("stats %+v, want 2 accepted, 1 rejected", s)
	}
	cancel()
	if err := <-errc; err != nil {
		return fail("ServeTUN returned %v", err)
	}
	if _, err := net.InterfaceByName("ndtest0"); err == nil {
		return fail("ndtest0 still there after ServeTUN returned")
	}
	fmt.Println("plan address echoed, other port refused and logged, plan change routed, interface removed: ok")
	return 0
}

func echoServerPlain() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						c.Write(buf[:n])
					}
					if err != nil {
						break
					}
				}
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return ln.Addr().String()
}

func TestReportRoundTrip(t *testing.T) {
	for _, r := range []Report{
		{MTU: MTU, Name: "nanodems0"},
		{Err: "cannot open /dev/net/tun: permission denied"},
		{Err: strings.Repeat("é", 3000)}, // truncated at a rune boundary
	} {
		got, err := ParseReport(AppendReport(nil, r))
		if err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		if len(r.Err) <= maxReportError && got != r {
			t.Fatalf("got %+v, want %+v", got, r)
		}
		if len(r.Err) > maxReportError && (len(got.Err) > maxReportError || !strings.HasPrefix(r.Err, got.Err)) {
			t.Fatalf("long error not truncated cleanly: %d bytes", len(got.Err))
		}
	}
	for _, b := range [][]byte{nil, []byte("NDNS"), []byte("XXXX\x01\x00\x00\x00\xff\xff\x00\x00\x00")} {
		if _, err := ParseReport(b); err == nil {
			t.Fatalf("ParseReport(%q) accepted", b)
		}
	}
}

func TestMainUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"exec"}, {"exec", "--"}, {"tun", "a", "b"}, {"bogus"}} {
		var out bytes.Buffer
		if code := mainIO(args, dialTo("127.0.0.1:1", nil, nil), nil, &out); code != 2 || !strings.Contains(out.String(), "usage:") {
			t.Errorf("Main(%q) = %d, %q; want 2 and the usage", args, code, out.String())
		}
	}
}
