//go:build linux

package netns_test

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nanodems/connector/internal/netns"
)

// nsID names the network namespace the calling thread is in.
func nsID() (string, error) { return os.Readlink("/proc/thread-self/ns/net") }

// Do hands its thread back, in its own namespace, instead of retiring it:
// a retired thread would deliver Pdeathsig to every child it forked.
func TestDoKeepsItsThread(t *testing.T) {
	netns.Skip(t)
	n := netns.New(t)
	home, err := nsID()
	if err != nil {
		t.Fatal(err)
	}
	var inside string
	tids := map[int]bool{}
	for range 20 {
		if err := n.Do(func() error {
			tids[unix.Gettid()] = true
			inside, err = nsID()
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if inside == home {
		t.Fatalf("fn ran in the test's own namespace %s", home)
	}
	time.Sleep(100 * time.Millisecond) // a retired thread is gone by now
	for tid := range tids {
		if _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", tid)); err != nil {
			t.Errorf("thread %d that ran Do is gone: %v", tid, err)
			continue
		}
		ns, err := os.Readlink(fmt.Sprintf("/proc/self/task/%d/ns/net", tid))
		if err != nil || ns != home {
			t.Errorf("thread %d is in %s (%v) after Do, want %s", tid, ns, err, home)
		}
	}
}

// A child started with Pdeathsig, as chromedp starts Chromium, outlives
// many Do calls on whatever threads the scheduler picks.
func TestDoLeavesPdeathsigChildrenAlone(t *testing.T) {
	netns.Skip(t)
	n := netns.New(t)
	var children []*exec.Cmd
	for range 8 { // forked from as many threads as the scheduler gives
		cmd := exec.Command("sleep", "60")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		children = append(children, cmd)
		runtime.Gosched()
	}
	for range 200 {
		if err := n.Do(func() error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	for i, c := range children {
		if err := c.Process.Signal(syscall.Signal(0)); err != nil {
			t.Fatalf("child %d died: %v", i, err)
		}
		var ws unix.WaitStatus
		if pid, _ := unix.Wait4(c.Process.Pid, &ws, unix.WNOHANG, nil); pid != 0 {
			t.Fatalf("child %d exited: %v", i, ws)
		}
	}
}
