package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCPUIdleAndHaltPoll(t *testing.T) {
	dir := t.TempDir()
	oldDrv, oldPoll := cpuidleDriverPath, haltPollPath
	t.Cleanup(func() { cpuidleDriverPath, haltPollPath = oldDrv, oldPoll })
	cpuidleDriverPath = filepath.Join(dir, "current_driver")
	haltPollPath = filepath.Join(dir, "guest_halt_poll_ns")

	if got := cpuIdle(); got != "" {
		t.Errorf("no cpuidle files: %q, want nothing", got)
	}
	if _, err := setHaltPoll(1000); err == nil {
		t.Error("setHaltPoll without the haltpoll driver succeeded")
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(cpuidleDriverPath, "acpi_idle\n")
	if got := cpuIdle(); got != "cpuidle driver acpi_idle" {
		t.Errorf("acpi_idle: %q", got)
	}
	write(cpuidleDriverPath, "haltpoll\n")
	write(haltPollPath, "0\n")
	if got := cpuIdle(); !strings.Contains(got, "guest_halt_poll_ns 0: an idle vCPU halts at once") {
		t.Errorf("no polling: %q", got)
	}
	restore, err := setHaltPoll(200000)
	if err != nil {
		t.Fatal(err)
	}
	if got := cpuIdle(); !strings.Contains(got, "guest_halt_poll_ns 200000: an idle vCPU polls 200 µs") {
		t.Errorf("after setHaltPoll(200000): %q", got)
	}
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	if ns, err := readHaltPoll(); err != nil || ns != 0 {
		t.Errorf("restored window %d, %v; want 0", ns, err)
	}
}
