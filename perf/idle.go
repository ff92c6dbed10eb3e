package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// How an idle CPU of the machine waits decides what a hand-off between
// processes costs. On a KVM guest whose vCPU halts as soon as it has
// nothing to run, every message that wakes a process on an idle vCPU
// pays a halt exit and a wake-up in the hypervisor, and the process is
// charged part of it. On the machine of 2026-12-07 (a Firecracker guest
// booted with haltpoll.guest_halt_poll_ns=0) each tunnel process spent
// 76 – 92 µs of CPU per 64 B round trip, and 28 – 33 µs with the vCPUs
// kept busy in the same minutes; the paths with more sleeping hops lost
// the most (docs/perf-peers-changes.md). Linux's default window is
// 200 µs. The report says how the machine waits, and -halt-poll-ns sets
// the window for a run.
//
// cpuidleDriverPath and haltPollPath are the cpuidle driver and the
// haltpoll driver's guest polling window; variables for the tests.
var (
	cpuidleDriverPath = "/sys/devices/system/cpu/cpuidle/current_driver"
	haltPollPath      = "/sys/module/haltpoll/parameters/guest_halt_poll_ns"
)

// cpuIdle describes how an idle CPU waits: the cpuidle driver and, for
// haltpoll, its polling window; "" where the machine does not say.
func cpuIdle() string {
	b, err := os.ReadFile(cpuidleDriverPath)
	if err != nil {
		return ""
	}
	drv := strings.TrimSpace(string(b))
	if drv != "haltpoll" {
		return "cpuidle driver " + drv
	}
	ns, err := readHaltPoll()
	switch {
	case err != nil:
		return "cpuidle driver haltpoll"
	case ns == 0:
		return "cpuidle driver haltpoll, guest_halt_poll_ns 0: an idle vCPU halts at once"
	}
	return fmt.Sprintf("cpuidle driver haltpoll, guest_halt_poll_ns %d: an idle vCPU polls %v before it halts", ns, fmtNS(ns))
}

func readHaltPoll() (int, error) {
	b, err := os.ReadFile(haltPollPath)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// setHaltPoll sets the guest halt-polling window to ns and returns what
// puts the previous one back.
func setHaltPoll(ns int) (restore func() error, err error) {
	old, err := readHaltPoll()
	if err != nil {
		return nil, fmt.Errorf("-halt-poll-ns needs the haltpoll cpuidle driver (%s): %w", haltPollPath, err)
	}
	write := func(v int) error {
		if err := os.WriteFile(haltPollPath, []byte(strconv.Itoa(v)), 0o644); err != nil {
			return fmt.Errorf("set %s to %d: %w", haltPollPath, v, err)
		}
		return nil
	}
	if err := write(ns); err != nil {
		return nil, err
	}
	return func() error { return write(old) }, nil
}

func fmtNS(ns int) string {
	if ns%1000 == 0 {
		return fmt.Sprintf("%d µs", ns/1000)
	}
	return fmt.Sprintf("%d ns", ns)
}
