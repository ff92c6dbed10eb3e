//go:build linux

// Package netns builds throwaway network namespaces for tests that need a
// real LAN: multicast discovery, port probes across a subnet. A test
// creates namespaces and veth links with the ip command and runs code in
// a namespace with Do; everything is removed when the test ends.
//
// It needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2; Skip
// skips a test, with the reason, where they are missing.
package netns

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// Skip skips t unless namespaces can be made here.
func Skip(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces (ip netns add)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (iproute2) to create network namespaces")
	}
}

// NS is a network namespace.
type NS struct {
	Name string
	f    *os.File
}

var seq atomic.Int32

// New creates a namespace with its loopback up; it is deleted when t
// ends. Its name is short and unique to this process, as veth names that
// derive from it must fit in 15 bytes.
func New(t testing.TB) *NS {
	t.Helper()
	name := fmt.Sprintf("t%d-%d", os.Getpid()%100000, seq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	f, err := os.Open("/var/run/netns/" + name)
	if err != nil {
		t.Fatalf("open namespace %s: %v", name, err)
	}
	t.Cleanup(func() { f.Close() })
	n := &NS{Name: name, f: f}
	n.IP(t, "link", "set", "lo", "up")
	return n
}

// IP runs `ip -n <ns> args…`, failing t on an error.
func (n *NS) IP(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", n.Name}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip -n %s %s: %v: %s", n.Name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Link joins a and b with a veth pair, named aName in a and bName in b,
// both up, with IPv6 off (so the kernel sends nothing on its own) and
// each given its addresses (CIDR, e.g. "10.98.0.1/24").
func Link(t testing.TB, a *NS, aName string, aAddrs []string, b *NS, bName string, bAddrs []string) {
	t.Helper()
	out, err := exec.Command("ip", "link", "add", aName, "netns", a.Name, "type", "veth", "peer", "name", bName, "netns", b.Name).CombinedOutput()
	if err != nil {
		t.Fatalf("ip link add veth %s/%s: %v: %s", aName, bName, err, out)
	}
	for _, side := range []struct {
		ns    *NS
		name  string
		addrs []string
	}{{a, aName, aAddrs}, {b, bName, bAddrs}} {
		side.ns.Sysctl(t, "net.ipv6.conf."+side.name+".disable_ipv6", "1")
		for _, ad := range side.addrs {
			side.ns.IP(t, "addr", "add", ad, "dev", side.name)
		}
		side.ns.IP(t, "link", "set", side.name, "up")
	}
}

// Sysctl sets a sysctl inside n.
func (n *NS) Sysctl(t testing.TB, key, value string) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", n.Name, "sysctl", "-qw", key+"="+value).CombinedOutput()
	if err != nil {
		// Without sysctl(8): write /proc/sys from inside.
		err = n.Do(func() error {
			return os.WriteFile("/proc/sys/"+strings.ReplaceAll(key, ".", "/"), []byte(value), 0o644)
		})
		if err != nil {
			t.Fatalf("sysctl %s=%s in %s: %v: %s", key, value, n.Name, err, out)
		}
	}
}

// Do runs fn on an OS thread that is in n: sockets fn makes belong to n
// for their whole life, whichever thread uses them later. Afterwards the
// thread goes back to its own namespace and to the scheduler rather than
// ending: a thread's exit sends Pdeathsig to every child it forked, and
// the scheduler may have used this very thread to start one (chromedp
// starts Chromium with SIGKILL as its Pdeathsig; a retired thread killed
// the browser in mid-test). Only when the way back fails does the thread
// stay locked and end with the goroutine, so that nothing else ever runs
// in n by accident.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter namespace %s: %w", n.Name, err)
			return
		}
		defer home.Close()
		if err := unix.Setns(int(n.f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread() // still in its own namespace
			errc <- fmt.Errorf("enter namespace %s: %w", n.Name, err)
			return
		}
		err = fn()
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// Packets returns the packets interface dev in n has sent and received.
func (n *NS) Packets(t testing.TB, dev string) (tx, rx uint64) {
	t.Helper()
	out := n.IP(t, "-j", "-s", "link", "show", "dev", dev)
	var links []struct {
		Stats struct {
			RX struct{ Packets uint64 } `json:"rx"`
			TX struct{ Packets uint64 } `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -s link show %s in %s: %v (%q)", dev, n.Name, err, out)
	}
	return links[0].Stats.TX.Packets, links[0].Stats.RX.Packets
}
