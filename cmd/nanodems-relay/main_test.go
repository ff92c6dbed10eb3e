package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The test binary doubles as nanodems-relay: with this variable set it
// runs main with the arguments after "--".
func TestMain(m *testing.M) {
	if os.Getenv("NANODEMS_RELAY_AS_MAIN") == "1" {
		for i, a := range os.Args {
			if a == "--" {
				os.Args = append([]string{"nanodems-relay"}, os.Args[i+1:]...)
				break
			}
		}
		main()
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

var (
	apiURL     = regexp.MustCompile(`msg="relay listening" api=(\S+)`)
	metricsURL = regexp.MustCompile(`msg="metrics listening" url=(\S+)`)
)

// `serve` answers ready while it runs; SIGTERM makes it drain (with
// nothing open, at once) and exit 0.
func TestServeDrainsOnSIGTERM(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$", "--", "serve",
		"--data-dir", t.TempDir(), "--api-addr", "127.0.0.1:0", "--agent-addr", "127.0.0.1:0", "--peer-addr", "127.0.0.1:0",
		"--rtsp-addr", "off", "--plain-http", "--node", "sigterm-relay", "--drain-timeout", "10s", "--metrics-addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "NANODEMS_RELAY_AS_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	var log []string
	url, metrics := "", ""
	for url == "" && sc.Scan() {
		log = append(log, sc.Text())
		if m := apiURL.FindStringSubmatch(sc.Text()); m != nil {
			url = m[1]
		}
		if m := metricsURL.FindStringSubmatch(sc.Text()); m != nil {
			metrics = m[1]
		}
	}
	if url == "" {
		cmd.Wait()
		t.Fatalf("no 'relay listening' line:\n%s", strings.Join(log, "\n"))
	}
	client := &http.Client{Transport: &http.Transport{}}
	resp, err := client.Get(url + "/healthz/ready")
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]string
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	client.CloseIdleConnections()
	if resp.StatusCode != 200 || body["status"] != "ready" || body["node"] != "sigterm-relay" {
		t.Fatalf("ready: %d %v", resp.StatusCode, body)
	}
	// --metrics-addr serves the relay's series.
	if metrics == "" {
		t.Fatalf("no 'metrics listening' line:\n%s", strings.Join(log, "\n"))
	}
	resp, err = client.Get(metrics)
	if err != nil {
		t.Fatal(err)
	}
	series, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	client.CloseIdleConnections()
	if resp.StatusCode != 200 || !strings.Contains(string(series), "\nconnector_agents_online 0\n") {
		t.Fatalf("GET %s: %d\n%.500s", metrics, resp.StatusCode, series)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() {
		log = append(log, sc.Text())
	}
	err = cmd.Wait()
	all := strings.Join(log, "\n")
	if err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, all)
	}
	for _, want := range []string{`msg="draining: no new agents or operators"`, `msg=drained`} {
		if !strings.Contains(all, want) {
			t.Errorf("log lacks %s:\n%s", want, all)
		}
	}
}
