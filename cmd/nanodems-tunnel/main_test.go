package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nanodems/connector/demo"
)

// The test binary doubles as nanodems-tunnel: with this variable set it
// runs main with the arguments after "--".
func TestMain(m *testing.M) {
	if os.Getenv("NANODEMS_TUNNEL_AS_MAIN") == "1" {
		for i, a := range os.Args {
			if a == "--" {
				os.Args = append([]string{"nanodems-tunnel"}, os.Args[i+1:]...)
				break
			}
		}
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// `run` prints its table, and a revoke makes it exit 1 with the sentence.
func TestRunExitsWithSentenceOnRevoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := demo.Start(ctx, demo.Options{DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var s struct {
		ID      string `json:"id"`
		Token   string `json:"token"`
		Command string `json:"command"`
	}
	if err := d.API.Do(ctx, "POST", "/api/cli/sessions", map[string]any{"site_ids": []string{d.Info.SiteID}}, &s, demo.Bearer(d.Info.Token)); err != nil {
		t.Fatal(err)
	}
	// The command as the relay hands it out, minus the program name;
	// --relay comes from the environment here, as it may for an operator.
	args := strings.Fields(s.Command)[2:]
	for i := 0; i < len(args); i++ {
		if args[i] == "--relay" {
			args = append(args[:i], args[i+2:]...)
			break
		}
	}
	cmd := exec.CommandContext(ctx, os.Args[0], append([]string{"-test.run=^$", "--", "run", "--socks", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), "NANODEMS_TUNNEL_AS_MAIN=1", "NANODEMS_RELAY="+d.Info.RelayURL)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var table []string
	for sc.Scan() {
		table = append(table, sc.Text())
		if strings.HasPrefix(sc.Text(), "Session ") {
			break
		}
	}
	out := strings.Join(table, "\n")
	for _, want := range []string{"LABEL", "LOCAL ADDRESS", "DEVICE", "Demo camera", "127.0.0.2:", "SOCKS5 and HTTP CONNECT proxy on 127.0.0.1:"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	go io.Copy(io.Discard, stdout)
	if err := d.API.Do(ctx, "DELETE", "/api/cli/sessions/"+s.ID, nil, nil, demo.Bearer(d.Info.Token)); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("run ended with %v, want exit status 1; stderr:\n%s", err, stderr.String())
	}
	const sentence = "nanodems-tunnel: the relay refused this CLI session: CLI session revoked\n"
	if !strings.HasSuffix(stderr.String(), sentence) {
		t.Fatalf("stderr does not end with %q:\n%s", sentence, stderr.String())
	}
}
