package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nanodems/connector/internal/testwait"
)

// TestDemoCommand runs README's first command as built binaries: the demo
// prints one JSON object, and its ready-to-paste connect command echoes.
func TestDemoCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries")
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "../../cmd/...")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	demo := exec.CommandContext(ctx, filepath.Join(bin, "nanodems-demo"), "--json", "--api-addr", "127.0.0.1:0", "--agent-addr", "127.0.0.1:0", "--rtsp-addr", "127.0.0.1:0", "--downloads-dir", "off")
	demo.Stderr = os.Stderr
	out, err := demo.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		demo.Process.Signal(os.Interrupt)
		demo.Wait()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("demo printed no line: %v", err)
	}
	var info map[string]string
	if err := json.Unmarshal([]byte(line), &info); err != nil {
		t.Fatalf("demo output is not one JSON object: %v\n%s", err, line)
	}
	for _, k := range []string{"console_url", "user_email", "user_password", "relay_url", "admin_key", "tenant_id", "site_id", "token", "echo_handle", "rtsp_handle", "rtsp_url", "cli_token", "cli_command"} {
		if info[k] == "" {
			t.Errorf("demo JSON lacks %q", k)
		}
	}
	if info["downloads_url"] != "" {
		t.Errorf("demo with --downloads-dir off offers downloads at %s", info["downloads_url"])
	}
	checkConsoleSignIn(t, info)
	cmdline := strings.Replace(info["connect_command"], "go run ./cmd/nanodems-tunnel", filepath.Join(bin, "nanodems-tunnel"), 1)
	got, err := exec.CommandContext(ctx, "bash", "-c", cmdline).CombinedOutput()
	if err != nil || string(got) != "hello\n" {
		t.Fatalf("connect command %q: %v, output %q", cmdline, err, got)
	}
	checkCommandLines(t, bin)
	checkTakenPorts(t, ctx, bin, info["relay_url"])
	// The printed RTSP URL plays: ffmpeg decodes frames of the synthetic
	// camera through the gateway.
	ff, err := exec.LookPath("ffmpeg")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("ffmpeg is not installed (.ci/run installs it)")
		}
		t.Skip("ffmpeg not installed")
	}
	play := exec.CommandContext(ctx, ff, "-hide_banner", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", info["rtsp_url"], "-frames:v", "10", "-f", "null", "-")
	if out, err := play.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg could not play the demo's RTSP URL %s: %v\n%s", info["rtsp_url"], err, out)
	}

}

// checkCommandLines: the three programs and the demo answer help, --help
// and version alike, listing every subcommand.
func checkCommandLines(t *testing.T, bin string) {
	t.Helper()
	for prog, cmds := range map[string][]string{
		"nanodems-relay":  {"serve"},
		"nanodems-agent":  {"enroll", "run"},
		"nanodems-tunnel": {"run", "exec", "tun", "connect"},
		"nanodems-demo":   {"run"},
		"nanodems-dist":   {"build"},
	} {
		for _, arg := range []string{"help", "--help"} {
			out, err := exec.Command(filepath.Join(bin, prog), arg).CombinedOutput()
			if err != nil {
				t.Errorf("%s %s: %v\n%s", prog, arg, err, out)
			}
			for _, c := range append(cmds, "version", "help") {
				if !strings.Contains(string(out), prog+" "+c) {
					t.Errorf("%s %s does not list %q:\n%s", prog, arg, c, out)
				}
			}
		}
		out, err := exec.Command(filepath.Join(bin, prog), "version").CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), prog+" ") || !strings.Contains(string(out), "go1.") {
			t.Errorf("%s version: %v %q", prog, err, out)
		}
		out, err = exec.Command(filepath.Join(bin, prog), "no-such-command").CombinedOutput()
		if code := exitCode(err); code != 2 || !strings.Contains(string(out), `unknown command "no-such-command"`) {
			t.Errorf("%s no-such-command: exit %d, %q", prog, code, out)
		}
	}
	if out, err := exec.Command(filepath.Join(bin, "nanodems-agent"), "run", "--log-level", "loud").CombinedOutput(); exitCode(err) != 2 {
		t.Errorf("nanodems-agent run --log-level loud: %v, %q; want a usage error", err, out)
	}
}

// checkTakenPorts: a second demo on the first one's API port says which
// address is taken and how to pick free ones.
func checkTakenPorts(t *testing.T, ctx context.Context, bin, relayURL string) {
	t.Helper()
	apiAddr := strings.TrimPrefix(relayURL, "https://")
	out, err := exec.CommandContext(ctx, filepath.Join(bin, "nanodems-demo"), "--api-addr", apiAddr, "--agent-addr", "127.0.0.1:0", "--rtsp-addr", "127.0.0.1:0").CombinedOutput()
	if exitCode(err) != 1 || !strings.Contains(string(out), apiAddr) || !strings.Contains(string(out), "--api-addr 127.0.0.1:0") {
		t.Errorf("second demo on taken %s: %v\n%s", apiAddr, err, out)
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestDemoExitsWithParent: killing the process that started the demo (the
// go command under `go run`) stops the demo and frees its ports.
func TestDemoExitsWithParent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", bin+"/", ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	apiAddr := ln.Addr().String()
	ln.Close()
	parent := exec.Command("bash", "-c", `"$0" --api-addr "$1" --agent-addr 127.0.0.1:0 --rtsp-addr off >/dev/null & wait`, filepath.Join(bin, "nanodems-demo"), apiAddr)
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	defer parent.Process.Kill()
	up := func() bool {
		c, err := net.DialTimeout("tcp", apiAddr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	testwait.For(t, 30*time.Second, "the demo to listen on "+apiAddr, up)
	parent.Process.Kill()
	parent.Wait()
	testwait.For(t, 15*time.Second, "the demo to stop listening on "+apiAddr+" after its parent was killed",
		func() bool { return !up() })
}
