package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemoCommand runs README's first command as built binaries: the demo
// prints one JSON object, and its ready-to-paste connect command echoes.
func TestDemoCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries")
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "../../cmd/nanodems-relay", "../../cmd/nanodems-tunnel")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	demo := exec.CommandContext(ctx, filepath.Join(bin, "nanodems-relay"), "demo", "--json", "--api-addr", "127.0.0.1:0", "--agent-addr", "127.0.0.1:0", "--rtsp-addr", "127.0.0.1:0")
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
	for _, k := range []string{"relay_url", "admin_key", "tenant_id", "site_id", "token", "echo_handle", "rtsp_handle", "rtsp_url"} {
		if info[k] == "" {
			t.Errorf("demo JSON lacks %q", k)
		}
	}
	cmdline := strings.Replace(info["connect_command"], "go run ./cmd/nanodems-tunnel", filepath.Join(bin, "nanodems-tunnel"), 1)
	got, err := exec.CommandContext(ctx, "bash", "-c", cmdline).CombinedOutput()
	if err != nil || string(got) != "hello\n" {
		t.Fatalf("connect command %q: %v, output %q", cmdline, err, got)
	}
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
